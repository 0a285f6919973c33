//! `airport-client`: watch an airport live, or set an object and report a crossing by hand.
//!
//! ```sh
//! cargo run -p airport-client -- --key dev-observer-1 watch EGLL
//! cargo run -p airport-client -- --key dev-controller-1 set EGLL SB_27L_A1 true
//! cargo run -p airport-client -- --key dev-pilot-1 crossing EGLL SB_27L_A1
//! ```

use airport_client::policy::Stop;
use airport_client::{Client, Event, Notice, Options};
use airport_protocol::Role;
use airport_protocol::wire::client::{CrossedStopbar, Envelope, WithData};
use airport_protocol::wire::server::ServerPacket;
use airport_protocol::wire::{ChangeRequest, ClientPacket, ObjectState, RequestId};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use std::process::ExitCode;
use tokio::sync::mpsc::UnboundedReceiver;

#[derive(Parser)]
#[command(version, about = "A client of the airport lighting service")]
struct Cli {
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8787", global = true)]
    server: String,
    /// The API key (or set AIRPORT_KEY).
    #[arg(long, env = "AIRPORT_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Send the key in the query instead of an `Authorization: Bearer` header.
    #[arg(long, global = true)]
    key_in_query: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print live events until interrupted, reconnecting as the protocol asks.
    Watch {
        airport: String,
        /// One JSON object per line, the replica after every change included.
        #[arg(long)]
        json: bool,
    },
    /// As a controller: set an object's state (`true`, `false`, a JSON object, or `null` to
    /// delete it), and confirm it with `GET_STATE`.
    Set {
        airport: String,
        object: String,
        state: String,
    },
    /// As a pilot: report a stopbar crossing.
    Crossing { airport: String, object: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(key) = cli.key.clone() else {
        eprintln!("a key is needed: --key KEY or AIRPORT_KEY");
        return ExitCode::from(2);
    };
    let options = |airport: &str| Options {
        server: cli.server.clone(),
        airport: airport.to_owned(),
        key: key.clone(),
        key_in_query: cli.key_in_query,
        backoff: Default::default(),
    };
    let result = match &cli.command {
        Command::Watch { airport, json } => watch(options(airport), *json).await,
        Command::Set {
            airport,
            object,
            state,
        } => match change(object, state) {
            Ok(change) => {
                let packet = ClientPacket::StateUpdate(WithData {
                    envelope: request("set"),
                    data: change,
                });
                once(options(airport), Role::Controller, packet).await
            }
            Err(error) => Err(error),
        },
        Command::Crossing { airport, object } => {
            let packet = ClientPacket::StopbarCrossing(WithData {
                envelope: request("crossing"),
                data: CrossedStopbar {
                    object_id: object.as_str().into(),
                },
            });
            once(options(airport), Role::Pilot, packet).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn request(id: &str) -> Envelope {
    Envelope {
        airport: None,
        request_id: Some(RequestId(id.into())),
    }
}

/// `true`, `false`, a JSON object, or `null` (delete).
fn change(object: &str, state: &str) -> Result<ChangeRequest, String> {
    let object_id = object.into();
    match serde_json::from_str::<Value>(state) {
        Ok(Value::Null) => Ok(ChangeRequest::Delete {
            object_id,
            patch: (),
        }),
        Ok(Value::Bool(on)) => Ok(ChangeRequest::Set {
            object_id,
            state: ObjectState::Switch(on),
        }),
        Ok(Value::Object(settings)) => Ok(ChangeRequest::Set {
            object_id,
            state: ObjectState::Settings(settings),
        }),
        _ => Err(format!(
            "state must be true, false, null or a JSON object, not {state}"
        )),
    }
}

async fn watch(options: Options, json: bool) -> Result<(), String> {
    let (client, mut notices) = Client::connect(options);
    while let Some(notice) = notices.recv().await {
        if json {
            let line = match &notice {
                Notice::Session(Event::ReplicaChanged) => {
                    json!({ "notice": "replica", "replica": *client.replica.borrow() })
                }
                _ => notice_json(&notice),
            };
            println!("{line}");
        } else if let Some(line) = describe(&notice) {
            println!("{line}");
        }
        if let Notice::Stopped(stop) = notice {
            return match stop {
                Stop::Closed => Ok(()),
                other => Err(format!("stopped: {}", other.describe())),
            };
        }
    }
    Ok(())
}

/// Connects, checks the role, sends `packet`, then `GET_STATE`: its reply comes after any
/// `ERROR` for the packet, so the snapshot confirms it.
async fn once(options: Options, role: Role, packet: ClientPacket) -> Result<(), String> {
    let (client, mut notices) = Client::connect(options);
    let result = confirm(&client, &mut notices, role, packet).await;
    client.close();
    while let Some(notice) = notices.recv().await {
        if let Notice::Stopped(_) = notice {
            break;
        }
    }
    result
}

async fn confirm(
    client: &Client,
    notices: &mut UnboundedReceiver<Notice>,
    role: Role,
    packet: ClientPacket,
) -> Result<(), String> {
    while let Some(notice) = notices.recv().await {
        match notice {
            Notice::Session(Event::Ready { role: mine, .. }) if mine != role => {
                return Err(format!("this key connects as {mine}, not {role}"));
            }
            Notice::Session(Event::Ready { .. }) => {
                client.send(packet.clone());
                client.send(ClientPacket::GetState(request("confirm")));
            }
            Notice::Session(Event::Packet(packet)) => match *packet {
                ServerPacket::Error(error) => {
                    return Err(format!(
                        "{}: {}",
                        error.data.code.as_str(),
                        error.data.message
                    ));
                }
                ServerPacket::StateSnapshot(snapshot)
                    if snapshot
                        .request_id
                        .as_ref()
                        .is_some_and(|id| id.0 == "confirm") =>
                {
                    println!("done; the airport is at seq {}", snapshot.data.seq);
                    return Ok(());
                }
                _ => {}
            },
            Notice::Refused(rejection) => return Err(rejection.to_string()),
            Notice::Closed { code, reason } => {
                return Err(format!("closed ({code:?}): {reason}"));
            }
            _ => {}
        }
    }
    Err("the client stopped".into())
}

fn notice_json(notice: &Notice) -> Value {
    match notice {
        Notice::Connecting { attempt } => json!({ "notice": "connecting", "attempt": attempt }),
        Notice::Session(event) => match event {
            Event::Ready { role, cid } => json!({ "notice": "ready", "role": role, "cid": cid }),
            Event::Packet(packet) => json!({ "notice": "packet", "packet": packet }),
            Event::Unknown(value) => json!({ "notice": "unknown", "packet": value }),
            Event::Unreadable(error) => json!({ "notice": "unreadable", "error": error }),
            Event::ReplicaChanged => json!({ "notice": "replica" }),
            Event::Resyncing => json!({ "notice": "resyncing" }),
        },
        Notice::Refused(rejection) => json!({
            "notice": "refused", "status": rejection.status, "code": rejection.code,
            "message": rejection.message,
        }),
        Notice::Closed { code, reason } => {
            json!({ "notice": "closed", "code": code, "reason": reason })
        }
        Notice::Retrying { after } => {
            json!({ "notice": "retrying", "afterMs": after.as_millis() as u64 })
        }
        Notice::Stopped(stop) => json!({ "notice": "stopped", "why": stop.describe() }),
    }
}

/// One line for a person, or nothing for what only clutters (heartbeats, replica ticks).
fn describe(notice: &Notice) -> Option<String> {
    Some(match notice {
        Notice::Connecting { attempt: 0 } => "connecting".into(),
        Notice::Connecting { attempt } => format!("connecting (attempt {})", attempt + 1),
        Notice::Session(Event::Ready { role, cid }) => format!("connected as {role} {cid}"),
        Notice::Session(Event::Packet(packet)) => match packet.as_ref() {
            ServerPacket::Heartbeat(_) | ServerPacket::HeartbeatAck(_) => return None,
            ServerPacket::InitialState(initial) => {
                let data = &initial.data;
                let resumed = match data.resumed_from {
                    Some(from) => format!(" (resumed from seq {from})"),
                    None => String::new(),
                };
                format!(
                    "{}: {} objects, controllers {:?}, seq {}{resumed}",
                    initial.airport,
                    data.objects.len(),
                    data.controllers,
                    data.seq
                )
            }
            other => serde_json::to_string(other).unwrap_or_default(),
        },
        Notice::Session(Event::Unknown(value)) => format!("unknown packet: {value}"),
        Notice::Session(Event::Unreadable(error)) => format!("unreadable frame: {error}"),
        Notice::Session(Event::ReplicaChanged) => return None,
        Notice::Session(Event::Resyncing) => "changes missed: asking for the state".into(),
        Notice::Refused(rejection) => rejection.to_string(),
        Notice::Closed { code, reason } => format!("closed ({code:?}): {reason}"),
        Notice::Retrying { after } => format!("retrying in {:.1} s", after.as_secs_f64()),
        Notice::Stopped(stop) => format!("stopped: {}", stop.describe()),
    })
}
