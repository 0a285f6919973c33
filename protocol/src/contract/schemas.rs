//! The schemas of the wire types, as schemars generates them, cut into one schema per packet.

use crate::wire::http::{ErrorBody, Health, PublicState, PublicStates};
use crate::wire::{ClientPacket, ServerPacket};
use schemars::generate::SchemaSettings;
use schemars::transform::{Transform, transform_subschemas};
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// Which way a packet travels: also the folder of its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Client,
    Server,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Client, Direction::Server];

    pub fn name(self) -> &'static str {
        match self {
            Direction::Client => "client",
            Direction::Server => "server",
        }
    }
}

/// One packet's schema: its `type` and the schema of the whole packet, with references to the
/// shared definitions.
pub struct PacketSchema {
    pub kind: String,
    pub schema: Value,
}

/// The schemas of one direction's packets, and the definitions they refer to, which live at
/// `definitions` (a JSON pointer, such as `/$defs`).
pub struct Packets {
    pub packets: Vec<PacketSchema>,
    pub definitions: Map<String, Value>,
}

pub fn packets(direction: Direction, definitions: &str) -> Packets {
    let mut generator = generator(definitions);
    let root = match direction {
        Direction::Client => generator.root_schema_for::<ClientPacket>(),
        Direction::Server => generator.root_schema_for::<ServerPacket>(),
    };
    let packets = root
        .get("oneOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|variant| PacketSchema {
            kind: variant["properties"]["type"]["const"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            schema: without_null_options(variant.clone()),
        })
        .collect();
    Packets {
        packets,
        definitions: definitions_of(generator),
    }
}

/// The HTTP bodies: the file name of each and its schema, and the definitions they refer to.
pub fn http_bodies(definitions: &str) -> (Vec<(&'static str, Value)>, Map<String, Value>) {
    let mut generator = generator(definitions);
    let bodies = vec![
        ("public-state", generator.subschema_for::<PublicState>()),
        ("public-states", generator.subschema_for::<PublicStates>()),
        ("error", generator.subschema_for::<ErrorBody>()),
        ("health", generator.subschema_for::<Health>()),
    ];
    let bodies = bodies
        .into_iter()
        .map(|(name, schema)| (name, schema.to_value()))
        .collect();
    (bodies, definitions_of(generator))
}

/// Every packet and HTTP body as a schema file of its own, each with the definitions it uses:
/// `schemas/<direction>/<TYPE>.schema.json` and `schemas/http/<body>.schema.json`.
pub fn standalone() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    for direction in Direction::ALL {
        let Packets {
            packets,
            definitions,
        } = packets(direction, "/$defs");
        for PacketSchema { kind, schema } in packets {
            let title = format!("{kind} ({} packet)", direction.name());
            let path = format!("schemas/{}/{kind}.schema.json", direction.name());
            files.push((path, root(&title, schema, &definitions)));
        }
    }
    let (bodies, definitions) = http_bodies("/$defs");
    for (name, schema) in bodies {
        let title = format!("HTTP {name} body");
        files.push((
            format!("schemas/http/{name}.schema.json"),
            root(&title, schema, &definitions),
        ));
    }
    files
}

/// Draft 2020-12 schemas of what is sent (so a member left out when empty is not required).
fn generator(definitions: &str) -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|settings| settings.definitions_path = definitions.to_owned().into())
        .into_generator()
}

fn definitions_of(mut generator: SchemaGenerator) -> Map<String, Value> {
    generator
        .take_definitions(true)
        .into_iter()
        .map(|(name, schema)| (name, without_null_options(schema)))
        .collect()
}

/// A schema file: `schema` with a title and the definitions it refers to, directly or not.
fn root(title: &str, schema: Value, definitions: &Map<String, Value>) -> Value {
    let mut used = BTreeSet::new();
    let mut pending = vec![&schema];
    while let Some(value) = pending.pop() {
        for name in references(value) {
            if let Some(definition) = definitions.get(&name)
                && used.insert(name)
            {
                pending.push(definition);
            }
        }
    }
    let mut file = Map::new();
    file.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    file.insert("title".into(), title.into());
    if let Value::Object(schema) = schema {
        file.extend(schema);
    }
    if !used.is_empty() {
        let defs = used
            .into_iter()
            .filter_map(|name| Some((name.clone(), definitions.get(&name)?.clone())))
            .collect();
        file.insert("$defs".into(), Value::Object(defs));
    }
    Value::Object(file)
}

/// The names of the definitions `value` refers to (`"$ref": "#/…/Name"`).
fn references(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("$ref", Value::String(target)) => target
                    .rsplit('/')
                    .next()
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
                _ => references(value),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

/// An optional member is left out rather than sent as `null` (serde skips a `None`), and the
/// server refuses a `null` `airport` or `requestId`; schemars would allow `null` for every
/// `Option`.
fn without_null_options(schema: impl Into<Value>) -> Value {
    let mut schema: Value = schema.into();
    if let Ok(schema) = <&mut Schema>::try_from(&mut schema) {
        AbsentNotNull.transform(schema);
    }
    schema
}

struct AbsentNotNull;

impl Transform for AbsentNotNull {
    fn transform(&mut self, schema: &mut Schema) {
        let required: BTreeSet<String> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect();
        if let Some(Value::Object(properties)) = schema.get_mut("properties") {
            for (name, property) in properties.iter_mut() {
                if !required.contains(name) {
                    drop_null(property);
                }
            }
        }
        transform_subschemas(self, schema);
    }
}

/// `{"type": ["T", "null"]}` → `{"type": "T"}`; `{"anyOf": [S, {"type": "null"}]}` → `S`.
fn drop_null(property: &mut Value) {
    let Some(object) = property.as_object_mut() else {
        return;
    };
    let null = json!({"type": "null"});
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|kind| kind != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
    } else if let Some(Value::Array(alternatives)) = object.get("anyOf")
        && let [schema, other] = alternatives.as_slice()
        && *other == null
        && let Value::Object(schema) = schema.clone()
    {
        object.remove("anyOf");
        object.extend(schema);
    }
}
