//! `market-demo`: the marketplace end to end on the in-process devnet.
//! See the crate docs of `market_demo` and the README's first command.

use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let mut opts = market_demo::Options::default();
    if let Some(speed) = std::env::var("DEMO_SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        opts.speed = speed;
    }
    match market_demo::run(opts).await {
        Ok(_) => {
            println!("\ndemo finished: every payment accounted for");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ndemo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
