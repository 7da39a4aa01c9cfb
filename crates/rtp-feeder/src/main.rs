//! `rtp-feeder`: see `rtp-feeder --help` and docs/rtp-feeder.md.

use std::process::ExitCode;

use clap::Parser;
use rtp_feeder::cli::Cli;
use rtp_feeder::config::Config;
use rtp_feeder::{app, pipeline};

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let cfg = Config::from_cli(&cli)?;
    if cli.check_config {
        pipeline::init()?;
        let summary = pipeline::check(&cfg)?;
        println!("config OK ({}): {:?} {:?}, {summary}", cfg.source, cfg.direction, cfg.ring);
        return Ok(ExitCode::SUCCESS);
    }
    app::run(cfg)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("[rtp-feeder error]: {err:#}");
            ExitCode::FAILURE
        }
    }
}
