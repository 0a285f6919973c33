//! CPU time of this generator and of the server process (from /proc), percentiles, and HTTP GETs
//! on 127.0.0.1 (the serve.mjs stats endpoint, the service's /state).

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Clock ticks per second of /proc/*/stat (USER_HZ; 100 on Linux).
const HZ: f64 = 100.0;

fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The server process's CPU time in ns, summed over its threads (`/proc/PID/task/*/schedstat`):
/// finer than /proc/PID/stat's 10 ms ticks, and up to date for threads that are asleep, so read
/// it when the server is idle.
pub fn cpu_ns(pid: Option<u32>) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", pid?)).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// CPU use over a window, as a percentage of one core.
pub struct CpuWindow {
    pid: Option<u32>,
    wall: Instant,
    me: u64,
    server: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub generator: f64,
    pub server: Option<f64>,
}

impl CpuWindow {
    pub fn start(pid: Option<u32>) -> Self {
        CpuWindow {
            pid,
            wall: Instant::now(),
            me: cpu_ticks("self").unwrap_or(0),
            server: pid.and_then(|p| cpu_ticks(&p.to_string())),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let secs = self.wall.elapsed().as_secs_f64().max(1e-3);
        let me = cpu_ticks("self").unwrap_or(0).saturating_sub(self.me) as f64 / HZ;
        let server = match (self.pid, self.server) {
            (Some(p), Some(t0)) => {
                cpu_ticks(&p.to_string()).map(|t| t.saturating_sub(t0) as f64 / HZ / secs * 100.0)
            }
            _ => None,
        };
        CpuUse {
            generator: me / secs * 100.0,
            server,
        }
    }
}

/// Waits (at most 20 s) until the server process uses under 10% of a core over 300 ms, so that
/// one measurement's leftovers (closes, backlog) do not count in the next.
pub async fn settle(pid: Option<u32>) {
    let Some(pid) = pid else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        return;
    };
    for _ in 0..66 {
        let w = CpuWindow::start(Some(pid));
        tokio::time::sleep(Duration::from_millis(300)).await;
        if w.stop().server.unwrap_or(0.0) < 10.0 {
            return;
        }
    }
}

pub struct Percentiles {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Percentiles in milliseconds of latencies in microseconds.
pub fn percentiles(lat_us: &mut [u32]) -> Percentiles {
    if lat_us.is_empty() {
        return Percentiles {
            n: 0,
            p50: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
        };
    }
    lat_us.sort_unstable();
    let n = lat_us.len();
    let at = |q: f64| lat_us[((q * n as f64).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0;
    Percentiles {
        n,
        p50: at(0.50),
        p99: at(0.99),
        max: lat_us[n - 1] as f64 / 1000.0,
    }
}

/// An HTTP GET on 127.0.0.1 (the serve.mjs stats endpoint, the service's /state): the status
/// and the body. HTTP/1.0, so the server closes the connection after a plain body.
pub async fn get(url: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .ok_or_else(|| format!("URL must be http://127.0.0.1:PORT/..., got {url}"))?;
    let (port, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect((
        "127.0.0.1",
        port.parse::<u16>().map_err(|e| e.to_string())?,
    ))
    .await
    .map_err(|e| e.to_string())?;
    let request = format!("GET /{path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .map_err(|_| format!("GET {url} timed out"))?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // "HTTP/1.1 200 OK"
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {url}: no status line"))?;
    Ok((status, body.to_owned()))
}

/// GET on the serve.mjs stats endpoint (http://127.0.0.1:PORT/PATH), parsed as JSON.
pub async fn get_json(url: &str) -> Result<serde_json::Value, String> {
    let (_, body) = get(url).await?;
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_hundred() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let p = percentiles(&mut v);
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
    }

    #[test]
    fn reads_own_cpu() {
        assert!(cpu_ticks("self").is_some());
    }
}
