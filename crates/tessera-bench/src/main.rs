//! The `tessera-bench` binary: parses the options, runs the scenario on one thread and prints the
//! report. Exits 1 when any request failed (unless `--allow-errors`), 2 when the run could not start.

use std::process::ExitCode;

use clap::Parser as _;
use tessera_bench::{run, Options};

fn main() -> ExitCode {
    let options = Options::parse();
    // One thread: the generator must leave the other cores to the server.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tessera-bench: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(run(&options)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("tessera-bench: {error}");
            return ExitCode::from(2);
        }
    };
    if options.json {
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("tessera-bench: {error}");
                return ExitCode::from(2);
            }
        }
        if let Some(line) = report.error_line() {
            eprintln!("{line}");
        }
    } else {
        print!("{report}");
    }
    if report.errors > 0 && !options.allow_errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
