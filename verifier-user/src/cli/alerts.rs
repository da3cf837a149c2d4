//! `verifier alerts tail`: the consumer side of the fleet's alert stream.
//! Agents publish to a NATS JetStream stream (`--alert-nats`); this reads
//! it with a pull consumer and prints one alert record per line, exactly
//! as the agents formatted it, so `jq` and log shippers take it as they
//! take the agent's own output.
//!
//! A record is acknowledged after it is written: a reader killed between
//! the two gets it again from a durable consumer (at least once); a broken
//! pipe (`| head`) ends the command quietly.

use std::{
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
};
use futures_util::StreamExt as _;

use crate::alert::nats::{DEFAULT_STREAM, connect_options, servers};

#[derive(Debug, clap::Subcommand)]
pub enum AlertsCommand {
    /// Print the fleet's alerts from NATS JetStream, one JSON record a line.
    ///
    /// Without --from-start or --since, only alerts published from now on.
    /// Exit status: 0, or 1 when --timeout passed before --count records.
    #[command(after_help = EXAMPLES)]
    Tail(TailArgs),
}

const EXAMPLES: &str = "\
Examples:
  verifier alerts tail --nats nats://nats.example:4222
      the fleet's new alerts as they arrive
  verifier alerts tail --nats nats://nats.example:4222 --since 1h --subject 'verifier.alerts.node-7'
      the last hour of one node's alerts, then new ones
  verifier alerts tail --nats nats://nats.example:4222 --durable soc --from-start | jq 'select(.severity == \"high\")'
      a durable reader: restarted, it resumes where it stopped
  nats sub 'verifier.alerts.>'
      live alerts with the nats CLI (a plain subscription: nothing stored is replayed)";

/// Options of `verifier alerts tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// NATS server (`nats://host:4222`, `tls://...`; several separated by
    /// commas).
    #[arg(long, value_name = "URL")]
    pub nats: String,

    /// The stream the agents publish to (their --alert-nats-stream).
    #[arg(long, default_value = DEFAULT_STREAM, value_name = "NAME")]
    pub stream: String,

    /// Only subjects matching this filter (`*` one token, `>` the rest),
    /// e.g. `verifier.alerts.node-7`; default: the whole stream.
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,

    /// Start at the oldest alert the stream holds.
    #[arg(long, conflicts_with = "since")]
    pub from_start: bool,

    /// Start at alerts published this long ago: `90s`, `15m`, `2h`, `1d`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,

    /// A durable consumer of this name: it remembers what was acknowledged,
    /// so a restarted reader resumes where it stopped (--from-start and
    /// --since apply when it is created).
    #[arg(long, value_name = "NAME")]
    pub durable: Option<String>,

    /// Stop after N records.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Give up after this many seconds (exit 1 if --count was not reached).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,

    /// NATS credentials file (`.creds`).
    #[arg(long, value_name = "FILE")]
    pub creds: Option<PathBuf>,
}

/// `90s`, `15m`, `2h`, `1d`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 =
        num.parse().map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 90s, 15m, 2h, 1d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// Runs `verifier alerts ...`.
pub fn run(cmd: AlertsCommand) -> anyhow::Result<ExitCode> {
    let AlertsCommand::Tail(args) = cmd;
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        match args.timeout {
            Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), tail(&args)).await {
                Ok(r) => r,
                Err(_) => {
                    eprintln!("verifier: --timeout {secs}s passed before --count records arrived");
                    Ok(ExitCode::from(1))
                }
            },
            None => tail(&args).await,
        }
    })
}

async fn tail(args: &TailArgs) -> anyhow::Result<ExitCode> {
    let addrs = servers(&args.nats)?;
    let client = connect_options("verifier alerts tail".into(), args.creds.as_deref(), false)?
        .connect(addrs.as_slice())
        .await
        .with_context(|| {
            format!("connecting to NATS at {}: is the server up and the URL right?", args.nats)
        })?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&args.stream).await.with_context(|| {
        format!("stream {}: agents create it when they first publish (--alert-nats); or name another with --stream", args.stream)
    })?;
    let deliver_policy = if args.from_start {
        DeliverPolicy::All
    } else if let Some(ago) = args.since {
        let start = SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH);
        let ns = start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
        let start_time = async_nats::datetime::from_nanos(ns).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
        DeliverPolicy::ByStartTime { start_time }
    } else {
        DeliverPolicy::New
    };
    let config = pull::Config {
        durable_name: args.durable.clone(),
        deliver_policy,
        ack_policy: AckPolicy::Explicit,
        filter_subject: args.subject.clone().unwrap_or_default(),
        ..Default::default()
    };
    let consumer: jetstream::consumer::PullConsumer = match &args.durable {
        Some(name) => stream.get_or_create_consumer(name, config).await,
        None => stream.create_consumer(config).await,
    }
    .map_err(|e| anyhow::anyhow!("creating a consumer on stream {}: {e}", args.stream))?;
    let mut messages =
        consumer.messages().await.map_err(|e| anyhow::anyhow!("reading stream {}: {e}", args.stream))?;
    let mut n = 0u64;
    if args.count == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| anyhow::anyhow!("reading stream {}: {e}", args.stream))?;
        let mut out = std::io::stdout().lock();
        out.write_all(&m.payload)?;
        out.write_all(b"\n")?;
        out.flush()?;
        drop(out);
        m.ack().await.map_err(|e| anyhow::anyhow!("acknowledging a record: {e}"))?;
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "m", "5w", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
