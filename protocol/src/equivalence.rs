//! Equivalent points: two points of an airport that are the same light switch together
//! (RUNNING_SERVICE.md, "Points"). The running service's `points` table says which they are;
//! this module turns its rows into groups, and says which member's state a group shows when
//! its members disagree. How a change reaches a group is [`crate::Airport::apply_changes`]'s.

use super::airport::ObjectRecord;
use super::ids::is_valid_object_id;
use serde_json::Value;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

/// A row of the running service's `points` table, the columns equivalence reads.
#[derive(Debug, Clone, Default)]
pub struct PointRow {
    pub id: String,
    pub airport_id: String,
    pub kind: String,
    /// A JSON array of `{lat, lng}`.
    pub coordinates: Option<String>,
    pub directionality: Option<String>,
    pub color: Option<String>,
    pub elevated: bool,
    pub ihp: bool,
}

impl PointRow {
    /// A row as SQLite's `json_object` writes it, with the table's column names; `None` without
    /// an id, airport or type. The flags are read as SQLite keeps them (`1`/`0`, or `true`/
    /// `false` as text); NULL is false. Read through a `Value`, whose parser the Worker has
    /// anyway, rather than with a deserializer of its own.
    pub fn from_json(row: &Value) -> Option<PointRow> {
        let text = |column| row.get(column).and_then(Value::as_str).map(String::from);
        let flag = |column| match row.get(column) {
            Some(Value::Bool(on)) => *on,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
            Some(Value::String(text)) => {
                matches!(text.trim().to_ascii_lowercase().as_str(), "1" | "true")
            }
            _ => false,
        };
        Some(PointRow {
            id: text("id")?,
            airport_id: text("airport_id")?,
            kind: text("type")?,
            coordinates: text("coordinates"),
            directionality: text("directionality"),
            color: text("color"),
            elevated: flag("elevated"),
            ihp: flag("ihp"),
        })
    }
}

/// What makes two points the same light. Coordinates are compared as numbers, exactly and in
/// order (the bits of each, `-0` as `0`): nearby is not the same.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Light {
    airport: String,
    kind: String,
    coordinates: Vec<(u64, u64)>,
    directionality: Option<String>,
    color: Option<String>,
    elevated: bool,
    ihp: bool,
}

fn exact(number: f64) -> u64 {
    (number + 0.0).to_bits()
}

/// `[{lat, lng}, …]` as exact numbers; `None` unless every member has both as numbers. Read as
/// a `Value`, whose parser the Worker has anyway.
fn coordinates(text: &str) -> Option<Vec<(u64, u64)>> {
    let Ok(Value::Array(points)) = serde_json::from_str(text) else {
        return None;
    };
    points
        .iter()
        .map(|point| {
            Some((
                exact(point.get("lat")?.as_f64()?),
                exact(point.get("lng")?.as_f64()?),
            ))
        })
        .collect()
}

impl PointRow {
    /// The light this point is, or `None` when it has no coordinates (or unreadable ones): such
    /// a point has no equivalent.
    fn light(&self) -> Option<Light> {
        let coordinates = coordinates(self.coordinates.as_deref()?)?;
        if coordinates.is_empty() {
            return None;
        }
        Some(Light {
            airport: self.airport_id.trim().to_ascii_uppercase(),
            kind: self.kind.clone(),
            coordinates,
            directionality: self.directionality.clone(),
            color: self.color.clone(),
            elevated: self.elevated,
            ihp: self.ihp,
        })
    }
}

/// The airport's groups of equivalent points: only points that have an equivalent are in it,
/// so an airport without duplicates has an empty one, checked once per frame.
#[derive(Debug, Clone, Default)]
pub struct Equivalence {
    /// Each group's ids (in id order when read from rows).
    groups: Vec<Vec<String>>,
    /// Each grouped id's group.
    group_of: HashMap<String, usize>,
}

/// The same groups in the same order (the index follows from them).
impl PartialEq for Equivalence {
    fn eq(&self, other: &Equivalence) -> bool {
        self.groups == other.groups
    }
}

impl Eq for Equivalence {}

impl Equivalence {
    /// Groups the rows: points that are the same light, two or more to a group. A row whose id
    /// is not a valid `objectId` is left out (no client can name it).
    pub fn of(rows: impl IntoIterator<Item = PointRow>) -> Equivalence {
        // Sorted by light, then id: each run of one light is a group, its ids in order.
        let mut points: Vec<(Light, String)> = rows
            .into_iter()
            .filter(|row| is_valid_object_id(&row.id))
            .filter_map(|row| Some((row.light()?, row.id)))
            .collect();
        points.sort_unstable();
        let groups = points
            .chunk_by(|a, b| a.0 == b.0)
            .map(|run| run.iter().map(|(_, id)| id.clone()).collect())
            .collect();
        Equivalence::from_groups(groups)
    }

    /// Groups the rows of a JSON array of rows ([`PointRow::from_json`]); `None` when the text
    /// is not a JSON array. A row that is not a point is left out.
    pub fn of_json(text: &str) -> Option<Equivalence> {
        let Ok(Value::Array(rows)) = serde_json::from_str(text) else {
            return None;
        };
        Some(Equivalence::of(rows.iter().filter_map(PointRow::from_json)))
    }

    /// Groups as [`Equivalence::groups`] lists them (how they are stored). An id listed twice
    /// counts where it is first; a group left with fewer than two ids is dropped.
    pub fn from_groups(groups: Vec<Vec<String>>) -> Equivalence {
        let mut equivalence = Equivalence::default();
        for mut ids in groups {
            let index = equivalence.groups.len();
            ids.retain(|id| match equivalence.group_of.entry(id.clone()) {
                Entry::Vacant(entry) => {
                    entry.insert(index);
                    true
                }
                Entry::Occupied(_) => false,
            });
            if ids.len() < 2 {
                for id in &ids {
                    equivalence.group_of.remove(id);
                }
                continue;
            }
            equivalence.groups.push(ids);
        }
        equivalence
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn groups(&self) -> &[Vec<String>] {
        &self.groups
    }

    /// The groups as text to store: a line per group, its ids separated by spaces (an
    /// `objectId` has neither).
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (i, ids) in self.groups.iter().enumerate() {
            for (j, id) in ids.iter().enumerate() {
                text.push_str(match (i, j) {
                    (0, 0) => "",
                    (_, 0) => "\n",
                    _ => " ",
                });
                text.push_str(id);
            }
        }
        text
    }

    /// Groups stored by [`Equivalence::to_text`].
    pub fn from_text(text: &str) -> Equivalence {
        let groups = text
            .split('\n')
            .map(|line| line.split_whitespace().map(String::from).collect())
            .collect();
        Equivalence::from_groups(groups)
    }

    /// The group `id` is in (itself included), if it has equivalents.
    pub fn group_of(&self, id: &str) -> Option<&[String]> {
        let index = *self.group_of.get(id)?;
        self.groups.get(index).map(Vec::as_slice)
    }

    /// The objects as clients see them: each grouped point shows its group's most recently
    /// changed member ([`latest`]), present or not, so that equivalents set before they were
    /// grouped still look the same; members with no state of their own come last. `None` when
    /// nothing is grouped: the objects are shown as they are.
    pub fn view<'a>(
        &'a self,
        objects: &'a BTreeMap<String, ObjectRecord>,
    ) -> Option<Vec<(&'a str, &'a ObjectRecord)>> {
        if self.is_empty() {
            return None;
        }
        let shown: Vec<Option<&ObjectRecord>> =
            self.groups.iter().map(|ids| latest(ids, objects)).collect();
        let mut view: Vec<(&str, &ObjectRecord)> = objects
            .iter()
            .map(|(id, record)| {
                let group = self.group_of.get(id).and_then(|&g| shown.get(g).copied());
                (id.as_str(), group.flatten().unwrap_or(record))
            })
            .collect();
        for (ids, shown) in self.groups.iter().zip(shown) {
            let Some(shown) = shown else { continue };
            let missing = ids.iter().filter(|id| !objects.contains_key(*id));
            view.extend(missing.map(|id| (id.as_str(), shown)));
        }
        Some(view)
    }
}

/// The most recently changed member of a group that has a state (a tie goes to the smaller id).
pub fn latest<'a>(
    ids: &[String],
    objects: &'a BTreeMap<String, ObjectRecord>,
) -> Option<&'a ObjectRecord> {
    ids.iter()
        .filter_map(|id| Some((id, objects.get(id)?)))
        .reduce(|best, next| {
            let newer = (next.1.updated_at, std::cmp::Reverse(next.0))
                > (best.1.updated_at, std::cmp::Reverse(best.0));
            if newer { next } else { best }
        })
        .map(|(_, record)| record)
}

/// Whether the points should be read again: never read, or last read `refresh_ms` ago.
pub fn refresh_due(read_at: Option<i64>, now: i64, refresh_ms: i64) -> bool {
    read_at.is_none_or(|at| now.saturating_sub(at) >= refresh_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cid;
    use serde_json::{Value, json};

    fn stopbar(id: &str) -> PointRow {
        PointRow {
            id: id.into(),
            airport_id: "EGLL".into(),
            kind: "stopbar".into(),
            coordinates: Some(r#"[{"lat":51.47,"lng":-0.45},{"lat":51.471,"lng":-0.451}]"#.into()),
            directionality: Some("uni-directional".into()),
            color: None,
            elevated: false,
            ihp: false,
        }
    }

    fn groups(rows: Vec<PointRow>) -> Vec<Vec<String>> {
        Equivalence::of(rows).groups().to_vec()
    }

    #[test]
    fn points_that_agree_on_everything_are_one_group_and_others_none() {
        let rows = vec![stopbar("SB_B"), stopbar("SB_A"), stopbar("SB_C")];
        assert_eq!(groups(rows), [["SB_A", "SB_B", "SB_C"]]);
        assert!(Equivalence::of(vec![stopbar("SB_A")]).is_empty());
        assert!(Equivalence::of(Vec::new()).is_empty());
    }

    #[test]
    fn coordinates_compare_exactly_and_in_order() {
        let mut reversed = stopbar("SB_R");
        reversed.coordinates =
            Some(r#"[{"lat":51.471,"lng":-0.451},{"lat":51.47,"lng":-0.45}]"#.into());
        let mut nearby = stopbar("SB_N");
        nearby.coordinates =
            Some(r#"[{"lat":51.4700001,"lng":-0.45},{"lat":51.471,"lng":-0.451}]"#.into());
        assert!(groups(vec![stopbar("SB_A"), reversed, nearby]).is_empty());
        // The same numbers spelled differently, and extra members, are the same place.
        let mut respelled = stopbar("SB_S");
        respelled.coordinates = Some(
            r#"[ {"lng":-0.450,"lat":5.147e1,"alt":3}, {"lat":51.4710,"lng":-0.451} ]"#.into(),
        );
        assert_eq!(groups(vec![stopbar("SB_A"), respelled]), [["SB_A", "SB_S"]]);
    }

    #[test]
    fn every_property_of_the_light_must_agree() {
        let changes: Vec<fn(&mut PointRow)> = vec![
            |p| p.kind = "lead_on".into(),
            |p| p.directionality = Some("bi-directional".into()),
            |p| p.directionality = None,
            |p| p.color = Some("green".into()),
            |p| p.elevated = true,
            |p| p.ihp = true,
        ];
        for change in changes {
            let mut other = stopbar("SB_B");
            change(&mut other);
            let alone = groups(vec![stopbar("SB_A"), other.clone()]);
            assert!(alone.is_empty(), "{other:?} grouped");
            let mut twin = other.clone();
            twin.id = "SB_C".into();
            assert_eq!(groups(vec![other, twin]), [["SB_B", "SB_C"]]);
        }
    }

    #[test]
    fn rows_are_read_as_sqlite_writes_them_and_a_missing_flag_is_false() {
        let row = |flag: Option<Value>| {
            let mut row = json!({"id": "SB_A", "airport_id": "EGLL", "type": "stopbar",
                "coordinates": "[{\"lat\":1,\"lng\":2}]", "directionality": null});
            if let Some(flag) = flag {
                row["elevated"] = flag.clone();
                row["ihp"] = flag;
            }
            PointRow::from_json(&row).unwrap()
        };
        for off in [
            json!(0),
            json!(false),
            json!("false"),
            json!(0.0),
            Value::Null,
        ] {
            let read = row(Some(off.clone()));
            assert_eq!((read.elevated, read.ihp), (false, false), "{off}");
        }
        assert!(!row(None).elevated, "a missing column");
        for on in [
            json!(1),
            json!(true),
            json!("true"),
            json!(" TRUE "),
            json!("1"),
        ] {
            let read = row(Some(on.clone()));
            assert_eq!((read.elevated, read.ihp), (true, true), "{on}");
        }
        let read = row(None);
        assert_eq!((read.directionality, read.color), (None, None));
        assert!(PointRow::from_json(&json!({"id": "SB_A", "type": "stopbar"})).is_none());

        let rows = json!([
            {"id": "SB_A", "airport_id": "EGLL", "type": "stopbar", "coordinates": "[{\"lat\":1,\"lng\":2}]"},
            {"id": "SB_B", "airport_id": "EGLL", "type": "stopbar", "coordinates": "[{\"lat\":1,\"lng\":2}]"},
            {"id": "SB_C"}
        ]);
        let grouped = Equivalence::of_json(&rows.to_string()).unwrap();
        assert_eq!(grouped.groups(), [["SB_A", "SB_B"]]);
        assert_eq!(Equivalence::of_json("[]"), Some(Equivalence::default()));
        assert_eq!(Equivalence::of_json("{}"), None);
    }

    #[test]
    fn names_and_orientation_do_not_matter_but_the_airport_does_in_any_case() {
        let mut lower = stopbar("SB_B");
        lower.airport_id = "egll".into();
        let mut elsewhere = stopbar("SB_C");
        elsewhere.airport_id = "EGKK".into();
        assert_eq!(
            groups(vec![stopbar("SB_A"), lower, elsewhere]),
            [["SB_A", "SB_B"]]
        );
    }

    #[test]
    fn a_point_without_coordinates_has_no_equivalent() {
        for coordinates in [None, Some("[]"), Some(""), Some("not json"), Some("[{}]")] {
            let rows = [stopbar("SB_A"), stopbar("SB_B")].map(|mut p| {
                p.coordinates = coordinates.map(String::from);
                p
            });
            assert!(groups(rows.into()).is_empty(), "{coordinates:?}");
        }
    }

    #[test]
    fn ids_no_client_can_name_are_left_out() {
        let rows = vec![stopbar("SB_A"), stopbar("SB B"), stopbar("")];
        assert!(groups(rows).is_empty());
    }

    #[test]
    fn stored_groups_come_back_the_same_and_bad_ones_are_cleaned() {
        let mut other = stopbar("C");
        other.kind = "lead_on".into();
        let mut twin = other.clone();
        twin.id = "D".into();
        let equivalence = Equivalence::of(vec![stopbar("A"), stopbar("B"), other, twin]);
        assert_eq!(equivalence.to_text(), "C D\nA B");
        assert_eq!(Equivalence::from_text(&equivalence.to_text()), equivalence);
        assert!(Equivalence::from_text("").is_empty());
        let messy = vec![
            vec!["B".into(), "A".into(), "A".into()],
            vec!["A".into(), "C".into()],
            vec!["D".into()],
        ];
        let cleaned = Equivalence::from_groups(messy);
        assert_eq!(cleaned.groups(), [["B", "A"]]);
        assert_eq!(cleaned.group_of("A"), Some(&["B".into(), "A".into()][..]));
        assert_eq!(cleaned.group_of("C"), None);
        assert_eq!(cleaned.group_of("D"), None);
    }

    fn record(state: Value, at: i64) -> ObjectRecord {
        ObjectRecord {
            state,
            controller_id: Cid::parse("1000001").unwrap(),
            updated_at: at,
            seq: 0,
        }
    }

    #[test]
    fn a_group_shows_its_most_recently_changed_member_everywhere() {
        let equivalence = Equivalence::from_groups(vec![
            vec!["A".into(), "B".into(), "C".into()],
            vec!["X".into(), "Y".into()],
        ]);
        let objects = BTreeMap::from([
            ("A".to_owned(), record(json!(true), 5)),
            ("B".to_owned(), record(json!(false), 9)),
            ("LONE".to_owned(), record(json!(true), 1)),
        ]);
        let view = equivalence.view(&objects).unwrap();
        let shown: Vec<(&str, &Value)> = view.iter().map(|(id, r)| (*id, &r.state)).collect();
        assert_eq!(
            shown,
            [
                ("A", &json!(false)),
                ("B", &json!(false)),
                ("LONE", &json!(true)),
                ("C", &json!(false))
            ]
        );
        // A tie goes to the smaller id.
        let tied = BTreeMap::from([
            ("B".to_owned(), record(json!(false), 9)),
            ("C".to_owned(), record(json!(true), 9)),
        ]);
        assert_eq!(
            latest(equivalence.groups()[0].as_slice(), &tied)
                .unwrap()
                .state,
            json!(false)
        );
        assert_eq!(Equivalence::default().view(&objects), None);
    }

    #[test]
    fn points_are_read_again_once_the_refresh_time_passed() {
        assert!(refresh_due(None, 0, 60_000));
        assert!(!refresh_due(Some(1_000), 60_999, 60_000));
        assert!(refresh_due(Some(1_000), 61_000, 60_000));
        assert!(refresh_due(Some(i64::MIN), i64::MAX, 60_000));
    }
}
