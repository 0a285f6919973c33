//! The service's structured log lines, one JSON object per line: what operators search for
//! (`wrangler tail`, Workers Logs) and what the integration tests wait for.

use airport_protocol::Icao;
use std::fmt::Display;
use worker::{console_error, console_log};

/// Something failed and was survived: `{"event":…,"detail":…}`, on the error stream.
pub fn failure(event: &str, detail: impl Display) {
    console_error!(
        "{{\"event\":\"{event}\",\"detail\":{:?}}}",
        detail.to_string()
    );
}

/// The same for one airport: `{"event":…,"airport":…,"detail":…}`.
pub fn airport_failure(event: &str, icao: &Icao, detail: impl Display) {
    console_error!(
        "{{\"event\":\"{event}\",\"airport\":\"{icao}\",\"detail\":{:?}}}",
        detail.to_string()
    );
}

/// Something an airport did, with counts: `{"event":…,"airport":…,"<name>":<count>,…}`.
pub fn airport(event: &str, icao: &Icao, counts: &[(&str, u64)]) {
    console_log!("{}", line(event, Some(icao), counts));
}

/// Something that happened, with counts: `{"event":…,"<name>":<count>,…}`.
pub fn counts(event: &str, counts: &[(&str, u64)]) {
    console_log!("{}", line(event, None, counts));
}

fn line(event: &str, icao: Option<&Icao>, counts: &[(&str, u64)]) -> String {
    let mut line = format!("{{\"event\":\"{event}\"");
    if let Some(icao) = icao {
        line.push_str(&format!(",\"airport\":\"{icao}\""));
    }
    for (name, count) in counts {
        line.push_str(&format!(",\"{name}\":{count}"));
    }
    line.push('}');
    line
}
