//! `rockit`: the publisher's command-line tool for a ROCKIT Edge (log in, push builds and
//! follow their pipeline, manage apps, deployments and tasks) and the reference reader of
//! the published formats (docs/FORMAT.md). One module per command group; `main` only parses
//! the arguments, dispatches, and turns a failure into one `rockit: …` line and exit code 1.

mod api;
mod apply;
mod config;
mod fail;
mod follow;
// The synthetic game model and its play sessions, shared with rockit-bench.
#[allow(dead_code)]
#[path = "../rockit-bench/game.rs"]
mod game;
#[allow(dead_code)]
#[path = "../rockit-bench/gen.rs"]
mod gen;
mod http;
mod install;
mod key;
mod login;
mod mount;
mod outdir;
mod play;
mod push;
mod report;
mod resources;
mod run;
mod source;
mod table;
mod tarstream;
mod trace;
mod unpack;

use api::Global;
use clap::{CommandFactory, Parser, Subcommand};
use fail::Fail;

#[derive(Parser)]
#[command(
    name = "rockit",
    version,
    about = "ROCKIT Edge command-line tool: push builds, manage apps and tasks, unpack published images",
    long_about = "ROCKIT Edge command-line tool.\n\n\
        Logs in to an Edge, uploads game builds and follows their pipeline until they are \
        published, and manages apps, deployments, tasks, users, roles and subscriptions \
        (docs/CLI.md). Reads what an Edge publishes (docs/FORMAT.md) from a directory or an \
        http(s) base URL, exactly as a launcher would, and checks every hash on the way.\n\n\
        Exit status: 0 on success, 1 on any failure (one line `rockit: <what failed>` on stderr), \
        2 on a usage error."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Login(login::LoginArgs),
    Logout(login::LogoutArgs),
    Push(push::Args),
    /// Apps: list, show, create, delete.
    #[command(subcommand)]
    Apps(resources::AppsCmd),
    /// Deployments (CDN origins): list, show, create, delete.
    #[command(subcommand)]
    Deployments(resources::DeploymentsCmd),
    /// Tasks: list, show, watch, ack, expire.
    #[command(subcommand)]
    Tasks(resources::TasksCmd),
    /// Run a failed task again and follow its pipeline to the end.
    Retry {
        /// The failed task (taskName).
        task: String,
        /// Return at once instead of following the pipeline.
        #[arg(long)]
        no_wait: bool,
    },
    /// Mark a task's warning as seen.
    Ack {
        /// The task (taskName).
        task: String,
    },
    /// Users of the organization: list, show.
    #[command(subcommand)]
    Users(resources::UsersCmd),
    /// Roles of the organization: list, show.
    #[command(subcommand)]
    Roles(resources::RolesCmd),
    /// Event subscriptions: list, show, delete.
    #[command(subcommand)]
    Subscriptions(resources::SubscriptionsCmd),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions {
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    Unpack(unpack::Args),
    Play(play::Args),
    /// Play traces: send them as a launcher does.
    #[command(subcommand)]
    Trace(trace::TraceCmd),
    Apply(apply::Args),
    Mount(mount::Args),
    Run(run::Args),
    Install(install::Args),
}

fn completions(shell: &str) -> Result<(), Fail> {
    use clap_complete::Shell;
    let sh = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    clap_complete::generate(sh, &mut Cli::command(), "rockit", &mut std::io::stdout());
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let g = cli.global;
    let res: Result<(), Fail> = match cli.cmd {
        Cmd::Login(a) => login::login(&g, a),
        Cmd::Logout(a) => login::logout(&g, a),
        Cmd::Push(a) => push::run(&g, a),
        Cmd::Apps(c) => resources::apps(&g, c),
        Cmd::Deployments(c) => resources::deployments(&g, c),
        Cmd::Tasks(c) => resources::tasks(&g, c),
        Cmd::Retry { task, no_wait } => resources::retry(&g, &task, no_wait),
        Cmd::Ack { task } => resources::ack(&g, &task),
        Cmd::Users(c) => resources::users(&g, c),
        Cmd::Roles(c) => resources::roles(&g, c),
        Cmd::Subscriptions(c) => resources::subscriptions(&g, c),
        Cmd::Completions { shell } => completions(&shell),
        Cmd::Unpack(a) => unpack::run(a),
        Cmd::Play(a) => play::run(a),
        Cmd::Trace(c) => trace::run(&g, c),
        Cmd::Apply(a) => apply::run(a),
        Cmd::Mount(a) => mount::run(&g, a),
        Cmd::Install(a) => install::run(&g, a),
        Cmd::Run(a) => match run::run(&g, a) {
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = res {
        report::clear_progress();
        eprintln!("rockit: {e}");
        std::process::exit(1);
    }
}
