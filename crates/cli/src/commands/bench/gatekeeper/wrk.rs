//! The same gatekeeper measured from outside the process with wrk (an external HTTP load
//! generator, `apt-get install wrk`), against the same scenario, in one run:
//!
//! 1. `healthz`: `GET /healthz` on 32 connections — what the server and the machine
//!    can do at all;
//! 2. `bearer`: authorized, audited reads on 32 connections, each request a random
//!    Observation of a random patient with that patient's bearer token. The requests
//!    are formatted once, when wrk starts (every Observation of every patient), and each
//!    request picks one: wrk shares the server's cores, and formatting a request in Lua
//!    per request is the generator's cost, not the server's (`/healthz` is a fixed
//!    request, formatted once). `bearer_lua_format` is the same load formatted per
//!    request, as earlier versions of this benchmark ran it, for comparison;
//! 3. `signed`: reads on 32 connections each with a fresh EIP-712 signature, signed
//!    before wrk starts (signing is the client's work) and written to a file that the
//!    script reads and formats when wrk starts; each signature is sent once (the
//!    gatekeeper refuses a replayed nonce, so a run that ran out would show refusals);
//! 4. `reader_alone` then `reader_flooded`: one reader (16 connections, bearer) alone,
//!    then side by side with a flood on 16 more connections of requests without
//!    credentials and requests signed with random bytes (which recover to addresses
//!    the chain does not know), all from the same source address as the reader.
//!
//! Only correct answers count: a run whose reads got anything but 200, or in which a
//! flood request was served, is invalid. The access log must grow by the reads and
//! nothing else (its new entries are read back: none may be by anyone but the
//! patients). wrk counts 4xx and 5xx alike, so the flood's answers are also checked
//! through the gatekeeper's counters of refusals.

use super::{Mode, Options, SIGNED_WINDOW, Scenario, sign_in};
use anyhow::{Context, bail, ensure};
use medrec_gatekeeper::limits::RateLimits;
use serde_json::{Value, json};
use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::Instant,
};

/// What one wrk run reported.
#[derive(Debug, Clone, PartialEq)]
struct WrkRun {
    requests: u64,
    per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    /// Answers that were not 2xx or 3xx.
    non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    socket_errors: u64,
}

impl WrkRun {
    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "per_sec": self.per_sec.round(),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
        })
    }
}

/// Runs the four measurements: see the [module documentation](self).
pub(super) fn measure(
    scenario: &Scenario,
    server: &tokio::runtime::Runtime,
    opts: &Options,
) -> anyhow::Result<Value> {
    let wrk = which_wrk()?;
    // Limits as a provider runs them, but no per-requester limit: the readers are few
    // patients reading as fast as they can. The flood's source budget stays on.
    let limits = RateLimits { requester: None, sign_in: None, ..RateLimits::default() };
    let (gk, log, addr) = scenario.serve(server, Mode::Bearer, limits, "wrk")?;
    let w = Wrk { bin: wrk, base: format!("http://{addr}") };
    let tokens = scenario
        .patients
        .iter()
        .map(|p| sign_in(&gk, &p.account.signer()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let reads = scenario.dir.join("reads.lua");
    std::fs::write(&reads, reads_script(scenario, &tokens, Format::Once)?)?;
    let reads_lua = scenario.dir.join("reads-lua-format.lua");
    std::fs::write(&reads_lua, reads_script(scenario, &tokens, Format::PerRequest)?)?;
    let flood = scenario.dir.join("flood.lua");
    let some_id = scenario.patients[0].observations.first().context("no Observations")?;
    std::fs::write(&flood, flood_script(&format!("/fhir/Observation/{some_id}")))?;
    let seconds = opts.seconds.max(1);
    let logged = |gk: &medrec_gatekeeper::server::Gatekeeper| -> anyhow::Result<u64> {
        server.block_on(gk.flush_access_log());
        Ok(server.block_on(log.head())?.size)
    };

    crate::output::note("wrk: warm-up");
    w.run("/healthz", None, 32, opts.warmup.max(1))?;
    w.run("/fhir/metadata", Some(&reads), 32, opts.warmup.max(1))?;
    crate::output::note(&format!("wrk: /healthz, 32 connections, {seconds} s"));
    let healthz = w.run("/healthz", None, 32, seconds)?;
    crate::output::note(&format!("wrk: bearer reads, 32 connections, {seconds} s"));
    let before = logged(&gk)?;
    let bearer = w.run("/", Some(&reads), 32, seconds)?;
    let bearer_logged = logged(&gk)? - before;
    crate::output::note(&format!(
        "wrk: bearer reads formatted per request, 32 connections, {seconds} s"
    ));
    let bearer_lua = w.run("/", Some(&reads_lua), 32, seconds)?;
    // `--smart`: the same reads with SMART access tokens, then bearer again, so that a
    // drift of the machine shows.
    let smart = if opts.smart {
        let smart_tokens = scenario.smart_tokens(server, addr)?;
        let smart_reads = scenario.dir.join("smart-reads.lua");
        std::fs::write(&smart_reads, reads_script(scenario, &smart_tokens, Format::Once)?)?;
        crate::output::note(&format!("wrk: SMART reads, 32 connections, {seconds} s"));
        let before = logged(&gk)?;
        let smart = w.run("/", Some(&smart_reads), 32, seconds)?;
        let smart_logged = logged(&gk)? - before;
        crate::output::note(&format!("wrk: bearer reads again, 32 connections, {seconds} s"));
        let bearer_again = w.run("/", Some(&reads), 32, seconds)?;
        Some((smart, smart_logged, bearer_again))
    } else {
        None
    };
    let (signed, signed_logged, signing) = signed_run(scenario, &w, opts, &|| logged(&gk))?;
    crate::output::note(&format!("wrk: one reader alone, 16 connections, {seconds} s"));
    let alone = w.run("/", Some(&reads), 16, seconds)?;
    crate::output::note(&format!("wrk: the reader beside a flood on 16 connections, {seconds} s"));
    let refused_before = gk.refusals();
    let before = logged(&gk)?;
    let flooder = w.spawn("/", Some(&flood), 16, seconds)?;
    let flooded = w.run("/", Some(&reads), 16, seconds)?;
    let flood_run = finish(flooder)?;
    let flooded_logged = logged(&gk)? - before;
    let refused_after = gk.refusals();
    // Entries of that window by anyone but the patients: what the flood logged.
    let patients: Vec<_> = scenario.patients.iter().map(|p| p.account.address).collect();
    let mut by_others = 0u64;
    let mut after = before;
    loop {
        let page = server.block_on(log.entries(after, 1000))?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        by_others += page.iter().filter(|e| !patients.contains(&e.entry.requester)).count() as u64;
    }

    // Each request the reader started is one entry; requests still in flight when wrk
    // stopped are logged but not counted by wrk (at most one per connection).
    let reads_logged = |logged: u64, run: &WrkRun, conns: u64| {
        logged >= run.requests && logged <= run.requests + conns
    };
    let valid = healthz.non_2xx == 0
        && bearer.non_2xx == 0
        && bearer_lua.non_2xx == 0
        && signed.non_2xx == 0
        && bearer_lua.socket_errors + signed.socket_errors == 0
        && reads_logged(signed_logged, &signed, 32)
        && alone.non_2xx == 0
        && flooded.non_2xx == 0
        && bearer.socket_errors + alone.socket_errors + flooded.socket_errors == 0
        && reads_logged(bearer_logged, &bearer, 32)
        && reads_logged(flooded_logged, &flooded, 16)
        && by_others == 0
        && flood_run.non_2xx == flood_run.requests
        && smart.as_ref().is_none_or(|(s, logged, again)| {
            s.non_2xx + again.non_2xx + s.socket_errors + again.socket_errors == 0
                && reads_logged(*logged, s, 32)
        });
    let refused =
        |f: fn(&medrec_gatekeeper::server::Refusals) -> u64| f(&refused_after) - f(&refused_before);
    Ok(json!({
        "generator": "wrk (Debian), 2 threads, keep-alive connections, closed loop",
        "seconds": seconds,
        "healthz": healthz.json(),
        "bearer": bearer.json(),
        "bearer_over_healthz": round3(bearer.per_sec / healthz.per_sec),
        "bearer_access_log_entries": bearer_logged,
        "bearer_lua_format": bearer_lua.json(),
        "bearer_lua_format_over_healthz": round3(bearer_lua.per_sec / healthz.per_sec),
        "signed": signed.json(),
        "signed_over_bearer": round3(signed.per_sec / bearer.per_sec),
        "signed_access_log_entries": signed_logged,
        "signing": signing,
        "reader_alone": alone.json(),
        "reader_flooded": flooded.json(),
        "flood": flood_run.json(),
        "flood_refused": {
            "unauthenticated": refused(|r| r.unauthenticated),
            "unknown_requester": refused(|r| r.unknown_requester),
            "source_throttled": refused(|r| r.source_throttled),
        },
        "reader_kept": round3(flooded.per_sec / alone.per_sec),
        "smart": smart.as_ref().map(|(s, _, _)| s.json()),
        "smart_access_log_entries": smart.as_ref().map(|(_, l, _)| l),
        "bearer_after_smart": smart.as_ref().map(|(_, _, b)| b.json()),
        "smart_over_bearer": smart.as_ref().map(|(s, _, b)| round3(2.0 * s.per_sec / (bearer.per_sec + b.per_sec))),
        "flood_access_log_entries": by_others,
        "valid": valid,
    }))
}

/// Signs one and a half times `--signed-rate` requests per second of the window (random
/// Observations, each patient's connections their own), then loads them with wrk on 32
/// connections.
/// Returns the run, the access log entries it added and what signing took.
fn signed_run(
    scenario: &Scenario,
    w: &Wrk,
    opts: &Options,
    logged: &dyn Fn() -> anyhow::Result<u64>,
) -> anyhow::Result<(WrkRun, u64, Value)> {
    let seconds = opts.seconds.max(1);
    let lists = 32usize;
    // Half again as many as the rate asks: wrk's two threads each send their own half,
    // and the faster one must not run out before the window ends.
    let total = opts.signed_rate.saturating_mul(seconds).saturating_mul(3) / 2;
    let per_list = usize::try_from(total.div_ceil(lists as u64))?;
    crate::output::note(&format!("wrk: signing {} requests", per_list * lists));
    let started = Instant::now();
    let signed = scenario.presign(lists, per_list)?;
    let took = started.elapsed();
    ensure!(
        took.as_secs() + seconds < SIGNED_WINDOW.as_secs(),
        "signing took {:.1} s: with {seconds} s of load the last signatures would be older \
         than the verifier's 30 s window; use fewer --seconds or a lower --signed-rate",
        took.as_secs_f64()
    );
    // One line per request, interleaved across the lists so that each wrk thread (every
    // other line) gets all the patients: the path, then header names and values.
    let mut data = String::with_capacity(per_list * lists * 340);
    for i in 0..per_list {
        for list in &signed {
            let spec = &list[i];
            data.push_str(&spec.path);
            for (name, value) in &spec.headers {
                write!(data, " {} {}", name.as_str(), value.to_str()?)?;
            }
            data.push('\n');
        }
    }
    let file = scenario.dir.join("signed.txt");
    std::fs::write(&file, data)?;
    let script = scenario.dir.join("signed.lua");
    std::fs::write(&script, signed_script(&file)?)?;
    crate::output::note(&format!("wrk: signed reads, 32 connections, {seconds} s"));
    let before = logged()?;
    let run = w.run("/", Some(&script), 32, seconds)?;
    let added = logged()? - before;
    let signing = json!({
        "presigned": per_list * lists,
        "seconds": (took.as_secs_f64() * 100.0).round() / 100.0,
    });
    Ok((run, added, signing))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn which_wrk() -> anyhow::Result<String> {
    let found =
        Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    match found {
        // wrk prints its usage and exits 1 for --version: being found is what counts.
        Ok(_) => Ok("wrk".to_owned()),
        Err(_) => bail!(
            "wrk is not installed: `apt-get install wrk` (Debian) to measure from outside the process"
        ),
    }
}

/// wrk against one server: each run `conns` connections for `secs` seconds, on `path`
/// or on what `script` asks for.
struct Wrk {
    bin: String,
    base: String,
}

impl Wrk {
    fn spawn(
        &self,
        path: &str,
        script: Option<&Path>,
        conns: u64,
        secs: u64,
    ) -> anyhow::Result<Child> {
        let mut c = Command::new(&self.bin);
        c.args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            "--timeout",
            "10s",
        ]);
        if let Some(script) = script {
            c.arg("-s").arg(script);
        }
        c.arg(format!("{}{path}", self.base));
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().context("cannot start wrk")
    }

    fn run(
        &self,
        path: &str,
        script: Option<&Path>,
        conns: u64,
        secs: u64,
    ) -> anyhow::Result<WrkRun> {
        finish(self.spawn(path, script, conns, secs)?)
    }
}

fn finish(child: Child) -> anyhow::Result<WrkRun> {
    let out = child.wait_with_output().context("wrk did not finish")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    parse(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
}

/// Reads wrk's text report (with `--latency`).
fn parse(text: &str) -> anyhow::Result<WrkRun> {
    let mut run = WrkRun {
        requests: 0,
        per_sec: 0.0,
        p50_ms: f64::NAN,
        p90_ms: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
        socket_errors: 0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => run.p50_ms = millis(v)?,
            ["90%", v] => run.p90_ms = millis(v)?,
            ["99%", v] => run.p99_ms = millis(v)?,
            ["Requests/sec:", v] => run.per_sec = v.parse()?,
            [n, "requests", "in", ..] => run.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => run.non_2xx = n.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                run.socket_errors =
                    rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum();
            }
            _ => {}
        }
    }
    ensure!(run.per_sec > 0.0 && run.p99_ms.is_finite(), "no throughput or latency in it");
    Ok(run)
}

/// `412.00us`, `1.23ms`, `2.00s` in milliseconds.
fn millis(v: &str) -> anyhow::Result<f64> {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("'{v}' is not a duration");
    };
    Ok(number.parse::<f64>()? * scale)
}

/// When a wrk script formats its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Every possible request once, when wrk starts; each request then picks one.
    Once,
    /// Each request as it is sent (the generator's Lua work per request).
    PerRequest,
}

/// A Lua script for wrk: each request a random Observation of a random patient, with
/// that patient's bearer token.
fn reads_script(
    scenario: &Scenario,
    tokens: &[axum::http::HeaderValue],
    format: Format,
) -> anyhow::Result<String> {
    let mut lua = String::from("local paths = {\n");
    for p in &scenario.patients {
        lua.push_str("  {");
        for id in &p.observations {
            write!(lua, "\"/fhir/Observation/{id}\",")?;
        }
        lua.push_str("},\n");
    }
    lua.push_str("}\nlocal tokens = {\n");
    for t in tokens {
        writeln!(lua, "  \"{}\",", t.to_str()?)?;
    }
    lua.push_str("}\n");
    lua.push_str(match format {
        Format::PerRequest => {
            "request = function()\n\
               local p = math.random(#tokens)\n\
               local ids = paths[p]\n\
               return wrk.format(\"GET\", ids[math.random(#ids)], { [\"Authorization\"] = tokens[p] })\n\
             end\n"
        }
        Format::Once => {
            "local formatted = {}\n\
             init = function(args)\n\
               for p = 1, #tokens do\n\
                 local mine = {}\n\
                 for i, path in ipairs(paths[p]) do\n\
                   mine[i] = wrk.format(\"GET\", path, { [\"Authorization\"] = tokens[p] })\n\
                 end\n\
                 formatted[p] = mine\n\
               end\n\
             end\n\
             request = function()\n\
               local mine = formatted[math.random(#formatted)]\n\
               return mine[math.random(#mine)]\n\
             end\n"
        }
    });
    Ok(lua)
}

/// A Lua script for wrk that sends each pre-signed request of `file` once: wrk's two
/// threads take every other line each, formatted when the thread starts, and send them
/// in order (past the end they start over, and the replays are refused: such a run
/// shows non-2xx answers).
fn signed_script(file: &Path) -> anyhow::Result<String> {
    let path = file.to_str().context("the temporary directory's path is not UTF-8")?;
    ensure!(!path.contains(['"', '\\', '\n']), "unexpected characters in {path}");
    Ok(format!(
        "local threads = 0\n\
         setup = function(thread)\n\
           thread:set(\"id\", threads)\n\
           threads = threads + 1\n\
         end\n\
         local formatted = {{}}\n\
         local next = 0\n\
         init = function(args)\n\
           local n = 0\n\
           for line in io.lines(\"{path}\") do\n\
             if n % 2 == id then\n\
               local words = {{}}\n\
               for w in line:gmatch(\"%S+\") do words[#words + 1] = w end\n\
               local headers = {{}}\n\
               for k = 2, #words, 2 do headers[words[k]] = words[k + 1] end\n\
               formatted[#formatted + 1] = wrk.format(\"GET\", words[1], headers)\n\
             end\n\
             n = n + 1\n\
           end\n\
         end\n\
         request = function()\n\
           next = next % #formatted + 1\n\
           return formatted[next]\n\
         end\n"
    ))
}

/// A Lua script for wrk: every other request without credentials, the others signed
/// with random bytes (a well-formed signature of nobody the chain knows).
fn flood_script(path: &str) -> String {
    format!(
        "local hex = \"0123456789abcdef\"\n\
         local function rhex(n, first)\n\
           local t = {{}}\n\
           for i = 1, n do\n\
             local r = math.random(16)\n\
             if i == 1 and first then r = math.random(first) end\n\
             t[i] = hex:sub(r, r)\n\
           end\n\
           return table.concat(t)\n\
         end\n\
         local n = 0\n\
         request = function()\n\
           n = n + 1\n\
           if n % 2 == 0 then return wrk.format(\"GET\", \"{path}\") end\n\
           local sig = \"0x\" .. rhex(64) .. rhex(64, 8) .. \"1b\"\n\
           return wrk.format(\"GET\", \"{path}\", {{\n\
             [\"X-MedRec-Signature\"] = sig,\n\
             [\"X-MedRec-Time\"] = tostring(os.time()),\n\
             [\"X-MedRec-Nonce\"] = \"0x\" .. rhex(64) }})\n\
         end\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_read() {
        let text = "Running 2s test @ http://127.0.0.1:1/healthz\n  2 threads and 32 connections\n  \
            Latency Distribution\n     50%  412.00us\n     75%  800.00us\n     90%    1.20ms\n     99%    4.50ms\n  \
            123456 requests in 2.00s, 12.34MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  \
            Non-2xx or 3xx responses: 7\nRequests/sec:  61728.00\nTransfer/sec:      6.17MB\n";
        let run = parse(text).unwrap();
        assert_eq!(run.requests, 123_456);
        assert!((run.p50_ms - 0.412).abs() < 1e-9 && (run.p99_ms - 4.5).abs() < 1e-9);
        assert!((run.per_sec - 61_728.0).abs() < 1e-9);
        assert_eq!((run.non_2xx, run.socket_errors), (7, 3));
        assert!(parse("nothing here").is_err());
        assert_eq!(millis("2.00s").unwrap(), 2000.0);
    }
}
