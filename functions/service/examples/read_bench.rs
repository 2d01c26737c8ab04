//! Times whole-table CSV/Parquet reads (the training read path).
//!
//! ```sh
//! cargo run --release -p churn-service --example read_bench -- /tmp/syn1m.csv [runs]
//! # RAYON_NUM_THREADS=1 for one parser thread
//! ```

use churn_service::features::{read_local_file, ReadOptions};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/syn1m.csv".into());
    let runs: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let options = ReadOptions::default();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let table = read_local_file(std::path::Path::new(&path), &options)?;
        let dt = t0.elapsed().as_secs_f64();
        times.push(dt);
        eprintln!(
            "{} rows x {} columns in {dt:.3} s",
            table.n_rows(),
            table.columns.len()
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.3} s over {runs} runs (min {:.3})",
        times[runs / 2],
        times[0]
    );
    Ok(())
}
