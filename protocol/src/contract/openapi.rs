//! The OpenAPI 3.1 document of the HTTP endpoints: `/connect` before the upgrade, the public
//! `/state` and `/health`.

use super::schemas::http_bodies;
use crate::connect::HttpErrorCode;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub fn document() -> Value {
    let (bodies, definitions) = http_bodies("/components/schemas");
    let mut schemas = Map::new();
    super::merge_definitions(&mut schemas, definitions);
    let body = |name: &str| {
        bodies
            .iter()
            .find(|(body, _)| *body == name)
            .map(|(_, schema)| schema.clone())
            .unwrap_or_default()
    };
    let error_body = body("error");
    let key_parameters = [
        json!({
            "name": "key", "in": "query",
            "description": "The API key; wins over the Authorization header.",
            "schema": { "type": "string" },
        }),
        json!({
            "name": "Authorization", "in": "header",
            "description": "`Bearer <key>` (the scheme in any case).",
            "schema": { "type": "string" },
        }),
    ];
    let airport = |description: &str, pattern: &str| {
        json!({
            "name": "airport", "in": "query", "required": true, "description": description,
            "schema": { "type": "string", "pattern": pattern },
        })
    };
    use HttpErrorCode::*;
    let connect = json!({
        "get": {
            "summary": "Open the WebSocket of one airport (asyncapi.json)",
            "description": "Every rejection comes before the upgrade; the checks run in the order of docs/protocol.md §1 and the first that applies is returned.",
            "parameters": [
                airport("The airport's ICAO code, any case.", "^[A-Za-z0-9]{4}$"),
                key_parameters[0], key_parameters[1],
                {
                    "name": "resume", "in": "query",
                    "description": "`<history>.<seq>` of the replica to resume; empty (or anything else) for the full state with the history id. Never a reason to refuse (docs/protocol.md §8).",
                    "schema": { "type": "string" },
                },
                {
                    "name": "Sec-WebSocket-Protocol", "in": "header",
                    "description": "For browsers: offer `airport-realtime, airport-key.<key>`; the key is then read from there (after the query and the Authorization header), and the upgrade answers `airport-realtime`.",
                    "schema": { "type": "string" },
                },
                {
                    "name": "Upgrade", "in": "header", "required": true,
                    "schema": { "type": "string", "pattern": "^\\s*[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]\\s*$" },
                },
            ],
            "responses": responses(
                json!({ "101": { "description": "Switching Protocols: the WebSocket, INITIAL_STATE first" } }),
                &[MethodNotAllowed, UpgradeRequired, InvalidAirport, MissingApiKey, InvalidApiKey,
                  Banned, NotConnected, UpstreamUnavailable, TooManyConnections,
                  TooManyRequests, Internal],
                &error_body,
            ),
        },
    });
    let state = json!({
        "get": {
            "summary": "The public state of one airport, or of every live one",
            "description": "No key is needed; a key that is given is checked. Cached for up to 2 s (`Cache-Control: public, max-age=2`); every answer has `Access-Control-Allow-Origin: *`.",
            "parameters": [
                airport("An ICAO code (any case), or `all`.", "^([A-Za-z0-9]{4}|[Aa][Ll][Ll])$"),
                key_parameters[0], key_parameters[1],
            ],
            "responses": responses(
                json!({ "200": {
                    "description": "One airport's state (`airport=ICAO`), or every live airport's (`airport=all`)",
                    "content": { "application/json": { "schema": {
                        "oneOf": [body("public-state"), body("public-states")],
                    } } },
                } }),
                &[MethodNotAllowed, InvalidAirport, InvalidApiKey, Banned, TooManyRequests,
                  Internal],
                &error_body,
            ),
        },
        "options": {
            "summary": "CORS preflight",
            "responses": { "204": { "description": "Allows GET and OPTIONS with an Authorization header" } },
        },
    });
    let health = json!({
        "get": {
            "summary": "Whether the service is up, and its version",
            "responses": responses(
                json!({ "200": {
                    "description": "Up",
                    "content": { "application/json": { "schema": body("health") } },
                } }),
                &[MethodNotAllowed],
                &error_body,
            ),
        },
    });
    json!({
        "openapi": "3.1.0",
        "info": super::info("The HTTP endpoints. Any other path is 404 NOT_FOUND; the WebSocket after the upgrade is in asyncapi.json, and docs/protocol.md describes everything."),
        "paths": { "/connect": connect, "/state": state, "/health": health },
        "components": { "schemas": schemas },
    })
}

/// `success` and one error response per status among `codes`, naming its codes.
fn responses(success: Value, codes: &[HttpErrorCode], error_body: &Value) -> Value {
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for code in codes {
        by_status
            .entry(code.status())
            .or_default()
            .push(code.as_str());
    }
    let mut responses = success;
    for (status, codes) in by_status {
        responses[status.to_string()] = json!({
            "description": codes.join(", "),
            "content": { "application/json": { "schema": error_body } },
        });
    }
    responses
}
