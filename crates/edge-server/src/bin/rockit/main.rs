//! `rockit`: the command-line reference for the published formats (docs/FORMAT.md) and,
//! in time, the publisher's tool. One module per subcommand; `main` only parses the
//! arguments, dispatches, and turns a failure into one `rockit: …` line and exit code 1.

mod apply;
mod fail;
mod http;
mod key;
mod outdir;
mod report;
mod source;
mod unpack;

use clap::{Parser, Subcommand};
use fail::Fail;

#[derive(Parser)]
#[command(
    name = "rockit",
    version,
    about = "ROCKIT Edge command-line tool: unpack published DxF images, apply patches",
    long_about = "ROCKIT Edge command-line tool.\n\n\
        Reads what an Edge publishes (docs/FORMAT.md) from a directory or an http(s) base URL, \
        exactly as a launcher would, and checks every hash on the way.\n\n\
        Exit status: 0 on success, 1 on any failure (one line `rockit: <what failed>` on stderr), \
        2 on a usage error."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Unpack(unpack::Args),
    Apply(apply::Args),
}

fn main() {
    let cli = Cli::parse();
    let res: Result<(), Fail> = match cli.cmd {
        Cmd::Unpack(a) => unpack::run(a),
        Cmd::Apply(a) => apply::run(a),
    };
    if let Err(e) = res {
        report::clear_progress();
        eprintln!("rockit: {e}");
        std::process::exit(1);
    }
}
