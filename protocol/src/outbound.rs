//! Server packets, serialized once so that a broadcast sends the same text to every socket.

use super::airport::{Airport, Changes, NeedsObjects, ObjectRecord};
use super::error::PacketError;
use super::ids::Cid;
use super::presence::Presence;
use super::role::Role;
use super::session::Session;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The envelope of every server packet. `airport` and `timestamp` are always filled.
#[derive(Serialize)]
struct Packet<'a, D> {
    #[serde(rename = "type")]
    kind: &'a str,
    airport: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<D>,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// What the airport's packets share: its code and the time they are sent.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    pub airport: &'a str,
    pub now: i64,
}

impl<'a> Stamp<'a> {
    pub fn of(airport: &'a Airport, now: i64) -> Self {
        Stamp {
            airport: airport.icao().as_str(),
            now,
        }
    }

    fn packet<D: Serialize>(
        self,
        kind: &str,
        data: Option<D>,
        seq: Option<u64>,
        request_id: Option<&str>,
    ) -> String {
        let packet = Packet {
            kind,
            airport: self.airport,
            data,
            timestamp: self.now,
            seq,
            request_id,
        };
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string(&packet).unwrap_or_default()
    }
}

pub fn heartbeat(stamp: Stamp<'_>) -> String {
    stamp.packet::<()>("HEARTBEAT", None, None, None)
}

pub fn heartbeat_ack(stamp: Stamp<'_>, request_id: Option<&str>) -> String {
    stamp.packet::<()>("HEARTBEAT_ACK", None, None, request_id)
}

pub fn error(stamp: Stamp<'_>, error: &PacketError, request_id: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        code: super::error::ErrorCode,
        message: &'a str,
    }
    let message = error.to_string();
    let data = Data {
        code: error.code(),
        message: &message,
    };
    stamp.packet("ERROR", Some(data), None, request_id)
}

/// Objects as the list `[{id, state, controllerId, timestamp}]`. One type for every list (the
/// airport's objects, their view, a resume's), so that its serializer is in the Wasm once.
struct ObjectList<'a>(&'a [(&'a str, &'a ObjectRecord)]);

impl Serialize for ObjectList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Item<'a> {
            id: &'a str,
            state: &'a Value,
            controller_id: &'a Cid,
            timestamp: i64,
        }
        serializer.collect_seq(self.0.iter().map(|&(id, record)| Item {
            id,
            state: &record.state,
            controller_id: &record.controller_id,
            timestamp: record.updated_at,
        }))
    }
}

/// What every snapshot of an airport shares between two changes: its objects and shared state,
/// serialized once per `seq` and reused by each `GET_STATE`, `INITIAL_STATE` and `/state` until
/// the next change (a quiet airport's pilots ask every 30 s, and a reconnect storm asks once per
/// socket).
#[derive(Debug)]
pub struct SnapshotParts {
    seq: u64,
    objects: Box<RawValue>,
    shared_state: Box<RawValue>,
}

impl SnapshotParts {
    /// About what a snapshot built from these parts weighs, in bytes.
    pub fn bytes(&self) -> usize {
        self.objects.get().len() + self.shared_state.get().len()
    }

    /// Equivalent points are shown alike ([`crate::equivalence::Equivalence::view`]).
    pub fn of(airport: &Airport) -> Result<Self, NeedsObjects> {
        let records = airport.objects().ok_or(NeedsObjects)?;
        let view = airport.equivalence().view(records);
        let objects = view.unwrap_or_else(|| {
            let objects = records.iter();
            objects.map(|(id, r)| (id.as_str(), r)).collect()
        });
        Ok(SnapshotParts::with(airport, &ObjectList(&objects)))
    }

    /// The parts of an airport with no object.
    pub fn without_objects(airport: &Airport) -> Self {
        SnapshotParts::with(airport, &ObjectList(&[]))
    }

    fn with(airport: &Airport, objects: &ObjectList<'_>) -> Self {
        SnapshotParts {
            seq: airport.seq(),
            objects: raw(objects),
            shared_state: raw(airport.shared().as_map()),
        }
    }
}

fn raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    // Serializing these types cannot fail: every map key is a string.
    serde_json::value::to_raw_value(value)
        .or_else(|_| RawValue::from_string("null".into()))
        .unwrap_or_default()
}

/// The parts of the airport's latest snapshot, built again only after its `seq` moved (every
/// change to objects or shared state moves it) or it was [`SnapshotCache::forget`]. A clone
/// starts empty.
#[derive(Debug, Default)]
pub struct SnapshotCache(Option<SnapshotParts>);

impl Clone for SnapshotCache {
    fn clone(&self) -> Self {
        SnapshotCache::default()
    }
}

impl SnapshotCache {
    /// What the snapshot shows changed without a change of `seq` (a new grouping of points).
    pub fn forget(&mut self) {
        self.0 = None;
    }

    pub fn parts(&mut self, airport: &Airport) -> Result<&SnapshotParts, NeedsObjects> {
        if self
            .0
            .as_ref()
            .is_some_and(|parts| parts.seq != airport.seq())
        {
            self.0 = None;
        }
        let parts = match self.0.take() {
            Some(parts) => parts,
            None => SnapshotParts::of(airport)?,
        };
        Ok(self.0.insert(parts))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    objects: &'a RawValue,
    /// Left out only by a resume in which it did not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_state: Option<&'a RawValue>,
    controllers: Vec<&'a Cid>,
    offline: bool,
    seq: u64,
}

impl<'a> Snapshot<'a> {
    fn of(parts: &'a SnapshotParts, presence: &'a Presence) -> Self {
        Snapshot::with(
            &parts.objects,
            Some(&parts.shared_state),
            presence,
            parts.seq,
        )
    }

    fn with(
        objects: &'a RawValue,
        shared_state: Option<&'a RawValue>,
        presence: &'a Presence,
        seq: u64,
    ) -> Self {
        let controllers: Vec<&Cid> = presence.controllers().collect();
        Snapshot {
            objects,
            shared_state,
            offline: controllers.is_empty(),
            controllers,
            seq,
        }
    }
}

/// How much of the airport an `INITIAL_STATE` carries.
#[derive(Debug)]
pub enum Since<'a> {
    /// The client did not ask to resume: the full state, as every deployed client knows it.
    Unasked,
    /// It asked, but the log cannot bring its replica up to date: the full state, and the
    /// history id to resume with next time.
    Full,
    /// Only what changed since its `seq`.
    Resumed(Changes<'a>),
}

/// The body of the public `GET /state` (PROTOCOL §6), also one entry of `/state?airport=all`:
/// the `STATE_SNAPSHOT` data with the airport, its pilots and the open sockets per role.
pub fn public_state(airport: &Airport, parts: &SnapshotParts, presence: &Presence) -> String {
    #[derive(Serialize)]
    struct Connections {
        controllers: u32,
        pilots: u32,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        airport: &'a str,
        #[serde(flatten)]
        snapshot: Snapshot<'a>,
        pilots: Vec<&'a Cid>,
        connections: Connections,
    }
    let body = Body {
        airport: airport.icao().as_str(),
        snapshot: Snapshot::of(parts, presence),
        pilots: presence.pilots().map(|(cid, _)| cid).collect(),
        connections: Connections {
            controllers: presence.sockets_of(Role::Controller),
            pilots: presence.sockets_of(Role::Pilot),
        },
    };
    serde_json::to_string(&body).unwrap_or_default()
}

pub fn state_snapshot(
    stamp: Stamp<'_>,
    parts: &SnapshotParts,
    presence: &Presence,
    request_id: Option<&str>,
) -> String {
    let data = Snapshot::of(parts, presence);
    stamp.packet("STATE_SNAPSHOT", Some(data), None, request_id)
}

/// The first packet on a socket. `timings` are the heartbeat interval and the idle timeout.
pub fn initial_state(
    stamp: Stamp<'_>,
    (airport, snapshots): (&Airport, &mut SnapshotCache),
    since: Since<'_>,
    presence: &Presence,
    session: &Session,
    (heartbeat_interval_ms, idle_timeout_ms): (i64, i64),
) -> Result<String, NeedsObjects> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        connection_type: Role,
        cid: &'a Cid,
        #[serde(flatten)]
        snapshot: Snapshot<'a>,
        heartbeat_interval_ms: i64,
        idle_timeout_ms: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        history: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        resumed_from: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        deleted: Option<&'a [&'a str]>,
    }
    let data = |snapshot, resumed_from, deleted| Data {
        connection_type: session.role,
        cid: &session.cid,
        snapshot,
        heartbeat_interval_ms,
        idle_timeout_ms,
        history: match since {
            Since::Unasked => None,
            Since::Full | Since::Resumed(_) => Some(airport.history().id().as_str()),
        },
        resumed_from,
        deleted,
    };
    let Since::Resumed(changes) = &since else {
        let parts = snapshots.parts(airport)?;
        let snapshot = Snapshot::of(parts, presence);
        return Ok(stamp.packet(
            "INITIAL_STATE",
            Some(data(snapshot, None, None)),
            None,
            None,
        ));
    };
    // Serialized for this socket alone: each replica is at its own `seq`.
    let objects = raw(&ObjectList(&changes.objects));
    let shared_state = changes
        .shared_changed
        .then(|| raw(airport.shared().as_map()));
    let snapshot = Snapshot::with(&objects, shared_state.as_deref(), presence, airport.seq());
    let data = data(snapshot, Some(changes.from), Some(&changes.deleted));
    Ok(stamp.packet("INITIAL_STATE", Some(data), None, None))
}

/// `{pilots: [{pilotId, cid, callsign}]}`: `cid` repeats `pilotId` and `callsign` falls back to
/// the cid, the names and the non-null callsign the deployed controller plugins read (§7).
pub fn online_pilots(stamp: Stamp<'_>, presence: &Presence, request_id: Option<&str>) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Pilot<'a> {
        pilot_id: &'a Cid,
        cid: &'a Cid,
        callsign: &'a str,
    }
    #[derive(Serialize)]
    struct Data<'a> {
        pilots: Vec<Pilot<'a>>,
    }
    let pilots = presence
        .pilots()
        .map(|(cid, callsign)| Pilot {
            pilot_id: cid,
            cid,
            callsign: callsign.unwrap_or(cid.as_str()),
        })
        .collect();
    stamp.packet("ONLINE_PILOTS", Some(Data { pilots }), None, request_id)
}

/// A changed object: its id and its new state, `None` once deleted.
pub type ObjectChanged<'a> = (&'a str, Option<&'a RawValue>);

/// One changed object as broadcast: `{objectId, state, controllerId}` or, for a deletion,
/// `{objectId, patch: null, controllerId}`.
struct ChangeItem<'a>(ObjectChanged<'a>, &'a Cid);

impl Serialize for ChangeItem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (object_id, state) = self.0;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("objectId", object_id)?;
        match state {
            Some(state) => map.serialize_entry("state", state)?,
            None => map.serialize_entry("patch", &Value::Null)?,
        }
        map.serialize_entry("controllerId", self.1)?;
        map.end()
    }
}

/// The update items of an accepted change to objects, from which the Durable Object may build a
/// coalesced `MULTI_STATE_UPDATE` for pilots and observers (PROTOCOL §7).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeItems {
    /// The items, serialized and joined by commas.
    pub items: String,
    pub seq: u64,
}

/// An accepted change to objects as broadcast: a `STATE_UPDATE` for one changed object, else a
/// `MULTI_STATE_UPDATE`; and its items. `changes` must not be empty. Each item is serialized
/// once, for both.
pub fn object_changes(
    stamp: Stamp<'_>,
    changes: &[ObjectChanged<'_>],
    by: &Cid,
    seq: u64,
) -> (String, ChangeItems) {
    let mut items = String::new();
    for (i, &change) in changes.iter().enumerate() {
        if i > 0 {
            items.push(',');
        }
        // Serializing these types cannot fail: every map key is a string.
        items.push_str(&serde_json::to_string(&ChangeItem(change, by)).unwrap_or_default());
    }
    let packet = match changes {
        [_] => envelope(stamp, "STATE_UPDATE", &items, seq, None),
        _ => envelope(
            stamp,
            "MULTI_STATE_UPDATE",
            &format!("{{\"updates\":[{items}]}}"),
            seq,
            None,
        ),
    };
    (packet, ChangeItems { items, seq })
}

/// Several accepted changes, in order, as one `MULTI_STATE_UPDATE`: `items` joined from their
/// broadcasts, `seq` the last change's and `seqFrom` the first's, so that a client tracking
/// `seq` sees no gap (PROTOCOL §7).
pub fn coalesced_changes(stamp: Stamp<'_>, items: &str, seq_from: u64, seq: u64) -> String {
    let data = format!("{{\"updates\":[{items}]}}");
    envelope(stamp, "MULTI_STATE_UPDATE", &data, seq, Some(seq_from))
}

/// A packet around `data`, already JSON, in the field order of [`Packet`]. The airport code
/// (four letters or digits) and the type need no escaping.
fn envelope(stamp: Stamp<'_>, kind: &str, data: &str, seq: u64, seq_from: Option<u64>) -> String {
    let seq_from = seq_from.map_or(String::new(), |from| format!(",\"seqFrom\":{from}"));
    format!(
        "{{\"type\":\"{kind}\",\"airport\":\"{}\",\"data\":{data},\"timestamp\":{},\"seq\":{seq}{seq_from}}}",
        stamp.airport, stamp.now
    )
}

pub fn shared_state_update(
    stamp: Stamp<'_>,
    patch: &Map<String, Value>,
    by: &Cid,
    seq: u64,
) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        shared_state_patch: &'a Map<String, Value>,
        controller_id: &'a Cid,
    }
    let data = Data {
        shared_state_patch: patch,
        controller_id: by,
    };
    stamp.packet("SHARED_STATE_UPDATE", Some(data), Some(seq), None)
}

pub fn stopbar_crossing(
    stamp: Stamp<'_>,
    object_id: &str,
    pilot: &Cid,
    callsign: Option<&str>,
) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        object_id: &'a str,
        pilot_id: &'a Cid,
        /// The pilot's cid again, under the name the deployed controller plugins read (§7).
        controller_id: &'a Cid,
        #[serde(skip_serializing_if = "Option::is_none")]
        callsign: Option<&'a str>,
    }
    let data = Data {
        object_id,
        pilot_id: pilot,
        controller_id: pilot,
        callsign,
    };
    stamp.packet("STOPBAR_CROSSING", Some(data), None, None)
}

/// `CONTROLLER_CONNECT` or `CONTROLLER_DISCONNECT`.
pub fn controller_presence(stamp: Stamp<'_>, connected: bool, controller: &Cid) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        controller_id: &'a Cid,
    }
    let kind = if connected {
        "CONTROLLER_CONNECT"
    } else {
        "CONTROLLER_DISCONNECT"
    };
    stamp.packet(
        kind,
        Some(Data {
            controller_id: controller,
        }),
        None,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn change_packets_built_around_their_items_are_what_serde_writes() {
        let stamp = Stamp {
            airport: "EGLL",
            now: 1_763_800_000_000,
        };
        let by = Cid::parse("1000001").unwrap();
        let on = RawValue::from_string("true".into()).unwrap();
        let lit = RawValue::from_string(r#"{"a":"\"x\""}"#.into()).unwrap();
        let one = [("SB_1", Some(&*on))];
        let (packet, items) = object_changes(stamp, &one, &by, 7);
        assert_eq!(
            packet,
            stamp.packet("STATE_UPDATE", Some(ChangeItem(one[0], &by)), Some(7), None)
        );
        let two = [("SB_1", Some(&*lit)), ("SB_2", None)];
        let (packet, more) = object_changes(stamp, &two, &by, 8);
        #[derive(Serialize)]
        struct Updates<'a> {
            updates: Vec<ChangeItem<'a>>,
        }
        let updates = two.iter().map(|&c| ChangeItem(c, &by)).collect();
        assert_eq!(
            packet,
            stamp.packet(
                "MULTI_STATE_UPDATE",
                Some(Updates { updates }),
                Some(8),
                None
            )
        );

        let joined = format!("{},{}", items.items, more.items);
        let coalesced: Value =
            serde_json::from_str(&coalesced_changes(stamp, &joined, 7, 8)).unwrap();
        assert_eq!(
            coalesced,
            json!({"type": "MULTI_STATE_UPDATE", "airport": "EGLL", "timestamp": 1_763_800_000_000_i64,
            "seq": 8, "seqFrom": 7, "data": {"updates": [
                {"objectId": "SB_1", "state": true, "controllerId": "1000001"},
                {"objectId": "SB_1", "state": {"a": "\"x\""}, "controllerId": "1000001"},
                {"objectId": "SB_2", "patch": null, "controllerId": "1000001"},
            ]}})
        );
    }
}
