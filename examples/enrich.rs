//! Enriching a JSONL file through a slow API, one call per distinct key, with a progress bar:
//! `map_by_key_jsonl_file` at work.
//!
//! 20,000 orders from 1,000 companies (written on the first run), each enriched with what a
//! simulated company-lookup API says about its company: 50 to 300 ms a call, one call in ten
//! failing (retried three times; a company that still fails is reported and retried by the next
//! run), at most 16 calls at once. The API is called once per company, not once per order.
//!
//! Press Ctrl-C: the run stops asking, finishes the calls in flight and saves every row it
//! can. Kill it (`kill -9`): nothing saved is lost. Run it again: it calls the API only for
//! the companies it has no answer for, and the file ends up as one uninterrupted run writes it.
//!
//! ```sh
//! cargo run --release --example enrich            # orders.jsonl -> orders.enriched.jsonl
//! cargo run --release --example enrich -- my_dir  # the same files in my_dir
//! ```

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use abstractions::StopHandle;
use abstractions::jsonl::{OnError, Options, map_by_key_jsonl_file};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// The part of a source row the API needs: serde ignores the other columns.
#[derive(Deserialize)]
struct Order {
    company: String,
}

/// What the API says about a company: the columns added to every order of that company.
#[derive(Serialize)]
struct Company {
    industry: &'static str,
    employees: u32,
    country: &'static str,
}

/// A simulated company-lookup API: 50 to 300 ms a call, and one call in ten fails.
async fn lookup(company: &str) -> io::Result<Company> {
    smol::Timer::after(Duration::from_millis(fastrand::u64(50..=300))).await;
    if fastrand::u8(0..10) == 0 {
        return Err(io::Error::other("503 service unavailable"));
    }
    // The answer depends on the company alone, as a real API's would.
    let n: u32 = company.trim_start_matches("company-").parse().unwrap_or(0);
    Ok(Company {
        industry: ["retail", "software", "logistics", "energy", "health"][n as usize % 5],
        employees: 10 + n * 37 % 5000,
        country: ["FR", "DE", "JP", "BR", "CA", "NG"][n as usize % 6],
    })
}

/// One call per company, tried up to three times.
async fn enrich(order: Order) -> io::Result<Company> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match lookup(&order.company).await {
            Ok(company) => return Ok(company),
            Err(error) if attempt == 3 => return Err(error),
            Err(_) => {
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes the source once: 20,000 orders from 1,000 companies, in no particular order.
fn write_orders(path: &PathBuf) -> io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for id in 0..20_000u32 {
        let company = id * 7919 % 1000;
        writeln!(
            out,
            r#"{{"order_id":{id},"company":"company-{company:04}","amount":{}.{:02},"note":"internal"}}"#,
            id % 900 + 10,
            id % 100
        )?;
    }
    out.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let (src, dst) = (dir.join("orders.jsonl"), dir.join("orders.enriched.jsonl"));
    if !src.exists() {
        write_orders(&src)?;
        eprintln!("wrote {}", src.display());
    }

    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
    )?);
    // Ctrl-C stops gracefully; a second Ctrl-C quits at once (what is saved stays saved).
    let stop = StopHandle::new();
    let pressed = AtomicBool::new(false);
    ctrlc::set_handler({
        let (stop, bar) = (stop.clone(), bar.clone());
        move || {
            if pressed.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            bar.println("stopping: finishing the calls in flight (Ctrl-C again to quit now)");
            stop.stop();
        }
    })?;

    let options = Options::new()
        .stop(stop)
        .on_error(OnError::Report)
        .progress({
            let bar = bar.clone();
            move |p| {
                // The total is known before the first row: the bar has an ETA from the start.
                bar.set_length(p.total);
                bar.set_position(p.done());
                if p.failed > 0 {
                    bar.set_message(format!("{} rows failed", p.failed));
                }
            }
        });
    let start = Instant::now();
    let run = map_by_key_jsonl_file(
        &src,
        &dst,
        enrich,
        "company",
        16,
        &["order_id", "amount"],
        options,
    );
    let report = smol::block_on(run)?;
    bar.finish_and_clear();

    eprintln!(
        "{}: {} rows found, {} written, {} missing; {} API calls in {:.1} s{}",
        dst.display(),
        report.rows_resumed,
        report.rows_written,
        report.rows_missing,
        report.calls,
        start.elapsed().as_secs_f64(),
        if report.stopped { " (stopped)" } else { "" },
    );
    for problem in report.problems.iter().take(5) {
        eprintln!("  {problem}");
    }
    if report.rows_missing > 0 {
        eprintln!("run it again to finish");
    }
    Ok(())
}
