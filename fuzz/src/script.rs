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
//! O2t 7b7d                 `t`: a text frame given in hex (for text with line breaks)
//! C0t@0 7b7d               `@N`: N ms after the previous event instead of 1
//! wait 130000              time passes (ms)
//! alarm                    the Durable Object's alarm fires
//! wake                     the object hibernated and a new one was built from storage
//! leave C0                 the socket closes
//! ```
//!
//! Unknown lines are ignored, so that mutated scripts stay scripts. [`render`] writes any
//! scenario as a script, so that a saved input keeps its meaning when the structured input
//! changes.

use crate::input::{LimitMode, Packet, Prefill, RoleChoice, Scenario, Step, Who};

pub const MAGIC: &[u8] = b"#script\n";

#[derive(PartialEq)]
enum Encoding {
    Text,
    Binary,
    Hex,
    TextHex,
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter_map(|b| (b as char).to_digit(16).map(|d| d as u8))
        .collect();
    digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect()
}

fn who(token: &str) -> Option<(Who, Encoding, u8)> {
    let mut chars = token.chars();
    let role = match chars.next()? {
        'C' => RoleChoice::Controller,
        'P' => RoleChoice::Pilot,
        'O' => RoleChoice::Observer,
        _ => return None,
    };
    let person = chars.next()?.to_digit(10)? as u8;
    let rest: String = chars.collect();
    let (flags, dt) = rest.split_once('@').unwrap_or((&rest, "1"));
    Some((
        Who {
            role,
            person,
            callsign: flags.contains('*'),
        },
        if flags.contains('x') {
            Encoding::Hex
        } else if flags.contains('t') {
            Encoding::TextHex
        } else if flags.contains('b') {
            Encoding::Binary
        } else {
            Encoding::Text
        },
        dt.parse().unwrap_or(1),
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
                if let Some((w, _, _)) = who(rest.trim()) {
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
            "wake" => scenario.steps.push(Step::Wake),
            _ => {
                if let Some((w, encoding, dt)) = who(head) {
                    scenario.steps.push(Step::Frame {
                        who: w,
                        dt,
                        binary: matches!(encoding, Encoding::Binary | Encoding::Hex),
                        packet: match encoding {
                            Encoding::Hex | Encoding::TextHex => Packet::Bytes(hex(rest)),
                            Encoding::Text | Encoding::Binary => Packet::Raw(rest.to_owned()),
                        },
                    });
                }
            }
        }
    }
    Some(scenario)
}

/// `scenario` as a script that [`parse`] reads back to the same run: every frame in hex.
pub fn render(scenario: &Scenario) -> Vec<u8> {
    let mut script = String::from_utf8_lossy(MAGIC).into_owned();
    if scenario.limit == LimitMode::Default {
        script.push_str("limit default\n");
    }
    let prefill = match scenario.prefill {
        Prefill::Empty => "empty",
        Prefill::Some => "some",
        Prefill::NearObjectLimit => "near-objects",
        Prefill::AtObjectLimit => "at-objects",
        Prefill::NearSharedLimit => "near-shared",
    };
    script.push_str(&format!("prefill {prefill}\n"));
    let who = |who: &Who| {
        let role = match who.role {
            RoleChoice::Controller | RoleChoice::Controller2 => 'C',
            RoleChoice::Pilot => 'P',
            RoleChoice::Observer => 'O',
        };
        let callsign = if who.callsign { "*" } else { "" };
        format!("{role}{}{callsign}", who.person % 4)
    };
    for step in &scenario.steps {
        let line = match step {
            Step::Frame {
                who: w,
                dt,
                binary,
                packet,
            }
            | Step::Frame2 {
                who: w,
                dt,
                binary,
                packet,
            } => {
                let hex: String = packet.render().iter().map(|b| format!("{b:02x}")).collect();
                let kind = if *binary { 'x' } else { 't' };
                format!("{}{kind}@{dt} {hex}", who(w))
            }
            Step::Join { who: w } => format!("join {}", who(w)),
            Step::Leave { who: w } => format!("leave {}", who(w)),
            Step::Wait { ms } => format!("wait {ms}"),
            Step::Alarm => "alarm".to_owned(),
            Step::Wake => "wake".to_owned(),
        };
        script.push_str(&line);
        script.push('\n');
    }
    script.into_bytes()
}
