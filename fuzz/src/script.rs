//! A line script for hand-written `state_machine` seeds. An input that starts with `#script`
//! is read as one event per line; anything else is decoded with `arbitrary`.
//!
//! ```text
//! #script
//! limit default            (optional: production's per-role limits instead of unlimited)
//! prefill near-objects     (optional: empty, some, near-objects, at-objects, near-shared)
//! join C0                  a socket of controller 0 opens (C, P or O, then a person 0-3;
//! join P1*                  `*` after a pilot: the role source knows a callsign)
//! C0 {"type":"HEARTBEAT"}  a text frame from controller 0, 1 ms after the previous event
//! P1b {"type":"..."}       `b`: the same as a binary frame
//! O2x 7b22ff7d             `x`: a binary frame given in hex (for bytes that are not UTF-8)
//! wait 130000              time passes (ms)
//! alarm                    the Durable Object's alarm fires
//! leave C0                 the socket closes
//! ```
//!
//! Unknown lines are ignored, so that mutated scripts stay scripts.

use crate::input::{LimitMode, Packet, Prefill, RoleChoice, Scenario, Step, Who};

pub const MAGIC: &[u8] = b"#script\n";

#[derive(PartialEq)]
enum Encoding {
    Text,
    Binary,
    Hex,
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter_map(|b| (b as char).to_digit(16).map(|d| d as u8))
        .collect();
    digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect()
}

fn who(token: &str) -> Option<(Who, Encoding)> {
    let mut chars = token.chars();
    let role = match chars.next()? {
        'C' => RoleChoice::Controller,
        'P' => RoleChoice::Pilot,
        'O' => RoleChoice::Observer,
        _ => return None,
    };
    let person = chars.next()?.to_digit(10)? as u8;
    let rest: String = chars.collect();
    Some((
        Who {
            role,
            person,
            callsign: rest.contains('*'),
        },
        if rest.contains('x') {
            Encoding::Hex
        } else if rest.contains('b') {
            Encoding::Binary
        } else {
            Encoding::Text
        },
    ))
}

/// The scenario a script describes, or `None` when the input is not a script.
pub fn parse(data: &[u8]) -> Option<Scenario> {
    let text = data.strip_prefix(MAGIC)?;
    let text = String::from_utf8_lossy(text);
    let mut scenario = Scenario {
        limit: LimitMode::Unlimited,
        prefill: Prefill::Empty,
        steps: Vec::new(),
    };
    for line in text.lines() {
        let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
        match head {
            "limit" => {
                scenario.limit = if rest.trim() == "default" {
                    LimitMode::Default
                } else {
                    LimitMode::Unlimited
                }
            }
            "prefill" => {
                scenario.prefill = match rest.trim() {
                    "some" => Prefill::Some,
                    "near-objects" => Prefill::NearObjectLimit,
                    "at-objects" => Prefill::AtObjectLimit,
                    "near-shared" => Prefill::NearSharedLimit,
                    _ => Prefill::Empty,
                }
            }
            "join" | "leave" => {
                if let Some((w, _)) = who(rest.trim()) {
                    scenario.steps.push(if head == "join" {
                        Step::Join { who: w }
                    } else {
                        Step::Leave { who: w }
                    });
                }
            }
            "wait" => {
                if let Ok(ms) = rest.trim().parse() {
                    scenario.steps.push(Step::Wait { ms });
                }
            }
            "alarm" => scenario.steps.push(Step::Alarm),
            _ => {
                if let Some((w, encoding)) = who(head) {
                    scenario.steps.push(Step::Frame {
                        who: w,
                        dt: 1,
                        binary: encoding != Encoding::Text,
                        packet: if encoding == Encoding::Hex {
                            Packet::Bytes(hex(rest))
                        } else {
                            Packet::Raw(rest.to_owned())
                        },
                    });
                }
            }
        }
    }
    Some(scenario)
}
