//! The AsyncAPI 3.0 document of the WebSocket: the `/connect` channel, a message per packet each
//! way, and the service's two operations on them.

use super::schemas::{Direction, PacketSchema, Packets, packets};
use serde_json::{Map, Value, json};

const DEFINITIONS: &str = "/components/schemas";

pub fn document() -> Value {
    let mut messages = Map::new();
    let mut schemas = Map::new();
    let mut operations = Map::new();
    for direction in Direction::ALL {
        let Packets {
            packets,
            definitions,
        } = packets(direction, DEFINITIONS);
        super::merge_definitions(&mut schemas, definitions);
        let mut refs = Vec::new();
        for PacketSchema { kind, mut schema } in packets {
            let key = format!("{}.{kind}", direction.name());
            let summary = schema
                .as_object_mut()
                .and_then(|schema| schema.remove("description"));
            let mut message = json!({ "name": kind, "title": kind, "payload": schema });
            if let Some(summary) = summary {
                message["summary"] = summary;
            }
            messages.insert(key.clone(), message);
            refs.push(json!({ "$ref": format!("#/channels/connect/messages/{key}") }));
        }
        let (name, action, summary) = match direction {
            Direction::Client => (
                "receiveClientPackets",
                "receive",
                "What clients send; a refused packet is answered with ERROR.",
            ),
            Direction::Server => (
                "sendServerPackets",
                "send",
                "Replies, broadcasts and heartbeats; INITIAL_STATE first.",
            ),
        };
        let operation = json!({
            "action": action,
            "channel": { "$ref": "#/channels/connect" },
            "summary": summary,
            "messages": refs,
        });
        operations.insert(name.to_owned(), operation);
    }
    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|key| {
            let reference = json!({ "$ref": format!("#/components/messages/{key}") });
            (key.clone(), reference)
        })
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": super::info("The WebSocket of one airport. Every packet, limit, error and close code is described in docs/protocol.md; the HTTP endpoints are in openapi.json."),
        "defaultContentType": "application/json",
        "channels": {
            "connect": {
                "address": "/connect",
                "title": "One airport",
                "description": "A WebSocket to one airport, opened with GET /connect?airport=ICAO and an API key (the `key` query parameter or `Authorization: Bearer`). One JSON packet per text frame. The first frame from the server is always INITIAL_STATE. Rejections come before the upgrade, as HTTP errors (openapi.json).",
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "bindingVersion": "0.1.0",
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "airport": {
                                    "description": "The airport's ICAO code, any case.",
                                    "type": "string",
                                    "pattern": "^[A-Za-z0-9]{4}$",
                                },
                                "key": {
                                    "description": "The API key; wins over the Authorization header.",
                                    "type": "string",
                                },
                                "resume": {
                                    "description": "`<history>.<seq>` of the replica to resume (INITIAL_STATE then carries only what changed, when the airport still can); empty (or anything else) for the full state with the history id (PROTOCOL §8).",
                                    "type": "string",
                                },
                            },
                            "required": ["airport"],
                        },
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Authorization": {
                                    "description": "`Bearer <key>`, when there is no `key` parameter.",
                                    "type": "string",
                                },
                            },
                        },
                    },
                },
            },
        },
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas },
    })
}
