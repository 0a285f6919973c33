//! The committed contract (`docs/contract/`) is what the wire types generate.

use airport_protocol::contract::{self, ContractFile};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[test]
fn the_committed_contract_is_what_the_wire_types_generate() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(contract::DIRECTORY);
    let generated = contract::files();
    let mut stale: BTreeSet<String> = generated
        .iter()
        .filter(|ContractFile { path, text }| {
            std::fs::read_to_string(directory.join(path)).ok().as_ref() != Some(text)
        })
        .map(|file| file.path.clone())
        .collect();
    let expected: BTreeSet<&str> = generated.iter().map(|file| file.path.as_str()).collect();
    for path in files_under(&directory) {
        let relative = path.strip_prefix(&directory).unwrap().to_string_lossy();
        if !expected.contains(&*relative) {
            stale.insert(format!("{relative} (not generated)"));
        }
    }
    assert!(
        stale.is_empty(),
        "{} is out of date: {}.\nRegenerate it with `{}` and commit the result.",
        contract::DIRECTORY,
        stale.into_iter().collect::<Vec<_>>().join(", "),
        contract::REGENERATE
    );
}

fn files_under(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[test]
fn every_reference_in_the_contract_resolves_to_a_schema() {
    for ContractFile { path, text } in contract::files() {
        let document: Value = serde_json::from_str(&text).unwrap();
        for reference in references(&document) {
            let target = reference
                .strip_prefix('#')
                .and_then(|pointer| document.pointer(pointer));
            let refers_only_to_itself = target
                .and_then(|target| target.get("$ref"))
                .is_some_and(|again| *again == *reference);
            assert!(
                target.is_some() && !refers_only_to_itself,
                "{path}: {reference} does not resolve"
            );
        }
    }
}

fn references(value: &Value) -> Vec<&str> {
    match value {
        Value::Object(members) => members
            .iter()
            .flat_map(|(name, value)| match (name.as_str(), value) {
                ("$ref", Value::String(reference)) => vec![reference.as_str()],
                _ => references(value),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(references).collect(),
        _ => Vec::new(),
    }
}
