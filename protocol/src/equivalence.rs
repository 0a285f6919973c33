//! Equivalent points: two points of an airport that are the same light switch together
//! (RUNNING_SERVICE.md, "Points"). The running service's `points` table says which they are;
//! this module turns its rows into groups, and says which member's state a group shows when
//! its members disagree. How a change reaches a group is [`crate::Airport::apply_changes`]'s.

use super::airport::ObjectRecord;
use super::ids::is_valid_object_id;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// A row of the running service's `points` table, the columns equivalence reads. The flags are
/// read as stored (SQLite has no booleans: `0`/`1`, or `true`/`false` as text).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PointRow {
    pub id: String,
    pub airport_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// A JSON array of `{lat, lng}`.
    pub coordinates: Option<String>,
    pub directionality: Option<String>,
    pub color: Option<String>,
    #[serde(default)]
    pub elevated: Flag,
    #[serde(default)]
    pub ihp: Flag,
}

/// A boolean column as SQLite keeps it: `1`/`0` or `true`/`false`, as numbers or as text; NULL
/// (or anything else) is false. Read with a small visitor rather than through a `Value`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Flag, D::Error> {
        deserializer.deserialize_any(FlagVisitor)
    }
}

struct FlagVisitor;

impl<'de> Visitor<'de> for FlagVisitor {
    type Value = Flag;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean, 0 or 1")
    }

    fn visit_bool<E: de::Error>(self, on: bool) -> Result<Flag, E> {
        Ok(Flag(on))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Flag, E> {
        Ok(Flag(n != 0))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Flag, E> {
        Ok(Flag(n != 0))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Flag, E> {
        Ok(Flag(n != 0.0))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Flag, E> {
        Ok(Flag(matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "1" | "true"
        )))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Flag, E> {
        Ok(Flag(false))
    }

    fn visit_none<E: de::Error>(self) -> Result<Flag, E> {
        Ok(Flag(false))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Flag, D::Error> {
        deserializer.deserialize_any(FlagVisitor)
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

#[derive(Deserialize)]
struct Coordinate {
    lat: f64,
    lng: f64,
}

fn exact(number: f64) -> u64 {
    (number + 0.0).to_bits()
}

impl PointRow {
    /// The light this point is, or `None` when it has no coordinates (or unreadable ones): such
    /// a point has no equivalent.
    fn light(&self) -> Option<Light> {
        let coordinates: Vec<Coordinate> =
            serde_json::from_str(self.coordinates.as_deref()?).ok()?;
        if coordinates.is_empty() {
            return None;
        }
        Some(Light {
            airport: self.airport_id.trim().to_ascii_uppercase(),
            kind: self.kind.clone(),
            coordinates: coordinates
                .iter()
                .map(|c| (exact(c.lat), exact(c.lng)))
                .collect(),
            directionality: self.directionality.clone(),
            color: self.color.clone(),
            elevated: self.elevated.0,
            ihp: self.ihp.0,
        })
    }
}

/// The airport's groups of equivalent points: only points that have an equivalent are in it,
/// so an airport without duplicates has an empty one, checked once per frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Equivalence {
    /// Each group's ids, sorted; groups in order of their first id.
    groups: Vec<Vec<String>>,
    /// Each grouped id's group.
    group_of: BTreeMap<String, usize>,
}

impl Equivalence {
    /// Groups the rows: points that are the same light, two or more to a group. A row whose id
    /// is not a valid `objectId` is left out (no client can name it).
    pub fn of(rows: impl IntoIterator<Item = PointRow>) -> Equivalence {
        let mut lights: BTreeMap<Light, Vec<String>> = BTreeMap::new();
        for row in rows {
            if !is_valid_object_id(&row.id) {
                continue;
            }
            if let Some(light) = row.light() {
                lights.entry(light).or_default().push(row.id);
            }
        }
        Equivalence::from_groups(lights.into_values().collect())
    }

    /// Groups as [`Equivalence::groups`] lists them (how they are stored). An id listed twice
    /// stays in its first group; a group left with fewer than two ids is dropped.
    pub fn from_groups(groups: Vec<Vec<String>>) -> Equivalence {
        let mut groups: Vec<Vec<String>> = groups
            .into_iter()
            .map(|mut ids| {
                ids.sort_unstable();
                ids.dedup();
                ids
            })
            .filter(|ids| ids.len() > 1)
            .collect();
        groups.sort_unstable();
        let mut equivalence = Equivalence::default();
        for mut ids in groups {
            ids.retain(|id| !equivalence.group_of.contains_key(id));
            if ids.len() < 2 {
                continue;
            }
            let index = equivalence.groups.len();
            for id in &ids {
                equivalence.group_of.insert(id.clone(), index);
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

    /// The group `id` is in (itself included, ids sorted), if it has equivalents.
    pub fn group_of(&self, id: &str) -> Option<&[String]> {
        let index = *self.group_of.get(id)?;
        Some(&self.groups[index])
    }

    /// The objects as clients see them: each grouped point shows its group's most recently
    /// changed member (ties to the smaller id), present or not, so that equivalents set before
    /// they were grouped still look the same. `None` when nothing is grouped: the objects are
    /// shown as they are.
    pub fn view<'a>(
        &'a self,
        objects: &'a BTreeMap<String, ObjectRecord>,
    ) -> Option<BTreeMap<&'a str, &'a ObjectRecord>> {
        if self.is_empty() {
            return None;
        }
        let mut view: BTreeMap<&str, &ObjectRecord> = objects
            .iter()
            .filter(|(id, _)| !self.group_of.contains_key(*id))
            .map(|(id, record)| (id.as_str(), record))
            .collect();
        for ids in &self.groups {
            if let Some(latest) = latest(ids, objects) {
                view.extend(ids.iter().map(|id| (id.as_str(), latest)));
            }
        }
        Some(view)
    }
}

/// The most recently changed member of a group that has a state (ties to the smaller id).
pub fn latest<'a>(
    ids: &[String],
    objects: &'a BTreeMap<String, ObjectRecord>,
) -> Option<&'a ObjectRecord> {
    ids.iter()
        .filter_map(|id| objects.get(id))
        .reduce(|best, record| {
            if record.updated_at > best.updated_at {
                record
            } else {
                best
            }
        })
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
            elevated: Flag(false),
            ihp: Flag(false),
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
            |p| p.elevated = Flag(true),
            |p| p.ihp = Flag(true),
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
    fn flags_are_read_as_sqlite_stores_them_and_missing_is_false() {
        let row = |flag: Option<Value>| {
            let mut row = json!({"id": "SB_A", "airport_id": "EGLL", "type": "stopbar",
                "coordinates": "[{\"lat\":1,\"lng\":2}]", "directionality": null});
            if let Some(flag) = flag {
                row["elevated"] = flag.clone();
                row["ihp"] = flag;
            }
            serde_json::from_value::<PointRow>(row).unwrap()
        };
        for off in [
            json!(0),
            json!(false),
            json!("false"),
            json!(0.0),
            Value::Null,
        ] {
            let read = row(Some(off.clone()));
            assert_eq!(
                (read.elevated, read.ihp),
                (Flag(false), Flag(false)),
                "{off}"
            );
        }
        assert_eq!(row(None).elevated, Flag(false), "a missing column");
        for on in [
            json!(1),
            json!(true),
            json!("true"),
            json!(" TRUE "),
            json!("1"),
        ] {
            let read = row(Some(on.clone()));
            assert_eq!((read.elevated, read.ihp), (Flag(true), Flag(true)), "{on}");
        }
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
        let equivalence = Equivalence::of(vec![stopbar("A"), stopbar("B")]);
        assert_eq!(
            Equivalence::from_groups(equivalence.groups().to_vec()),
            equivalence
        );
        let messy = vec![
            vec!["B".into(), "A".into(), "A".into()],
            vec!["A".into(), "C".into()],
            vec!["D".into()],
        ];
        let cleaned = Equivalence::from_groups(messy);
        assert_eq!(cleaned.groups(), [["A", "B"]]);
        assert_eq!(cleaned.group_of("B"), Some(&["A".into(), "B".into()][..]));
        assert_eq!(cleaned.group_of("C"), None);
    }

    fn record(state: Value, at: i64) -> ObjectRecord {
        ObjectRecord {
            state,
            controller_id: Cid::parse("1000001").unwrap(),
            updated_at: at,
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
                ("C", &json!(false)),
                ("LONE", &json!(true))
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
