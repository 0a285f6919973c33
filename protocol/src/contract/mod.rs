//! The machine-readable contract in `docs/contract/`, generated from the [`wire`](crate::wire)
//! types: a JSON Schema per packet and per HTTP body, an AsyncAPI 3.0 document for the
//! WebSocket and an OpenAPI 3.1 document for the HTTP endpoints. Only with the `schema` feature;
//! `cargo run -p airport-protocol --example contract --features schema` writes the files, and a
//! test checks that the committed ones are what this generates.

mod asyncapi;
mod openapi;
mod schemas;

use serde_json::{Map, Value, json};

/// Where the contract is committed, relative to the workspace root.
pub const DIRECTORY: &str = "docs/contract";

/// The command that regenerates the committed files.
pub const REGENERATE: &str = "cargo run -p airport-protocol --example contract --features schema";

/// One generated file: its path under [`DIRECTORY`] and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractFile {
    pub path: String,
    pub text: String,
}

/// Every file of the contract, in a fixed order.
pub fn files() -> Vec<ContractFile> {
    let mut files = vec![
        file("asyncapi.json", &asyncapi::document()),
        file("openapi.json", &openapi::document()),
    ];
    for (path, schema) in schemas::standalone() {
        files.push(file(&path, &schema));
    }
    files
}

/// Pretty JSON with a trailing newline. serde_json's maps keep keys sorted (the workspace does
/// not enable `preserve_order`), so the text does not depend on the order of generation.
fn file(path: &str, document: &Value) -> ContractFile {
    let mut text = serde_json::to_string_pretty(document).unwrap_or_default();
    text.push('\n');
    ContractFile {
        path: path.to_owned(),
        text,
    }
}

/// The `info` of both documents.
fn info(description: &str) -> Value {
    json!({
        "title": "Airport lighting realtime service",
        "version": env!("CARGO_PKG_VERSION"),
        "description": description,
        "license": { "name": "MIT" },
    })
}

/// Adds `definitions` to `schemas`. Two types of one name would be a mistake in the wire types,
/// not something to paper over.
fn merge_definitions(schemas: &mut Map<String, Value>, definitions: Map<String, Value>) {
    for (name, schema) in definitions {
        if let Some(existing) = schemas.get(&name) {
            assert_eq!(*existing, schema, "two wire types are both named {name}");
        }
        schemas.insert(name, schema);
    }
}
