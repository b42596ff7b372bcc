//! `rockit`: the publisher's command-line tool for a ROCKIT Edge (log in, push builds and
//! follow their pipeline, manage apps, deployments and tasks) and the reference reader of
//! the published formats (docs/FORMAT.md). One module per command group; `main` only parses
//! the arguments, dispatches, and turns a failure into one `rockit: …` line and exit code 1.

mod api;
mod apikeys;
mod apply;
mod builds;
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
mod roles;
mod run;
mod source;
mod subscriptions;
mod table;
mod tarstream;
mod trace;
mod trainings;
mod unpack;
mod users;
mod ziptar;

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
        published, and manages apps, builds, deployments, tasks, users, roles, API keys, \
        subscriptions and trainings (docs/CLI.md). Reads what an Edge publishes (docs/FORMAT.md) from a directory or an \
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
    /// Apps: list, show, create, delete, roll back.
    #[command(subcommand)]
    Apps(resources::AppsCmd),
    /// Builds of an app: list, show.
    #[command(subcommand)]
    Builds(builds::BuildsCmd),
    /// Deployments (CDN origins): list, show, create, probe, delete.
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
    /// Users of the organization (persons and machine users): list, show, create, modify, delete.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// Roles of the organization: list, show, create, modify, delete.
    #[command(subcommand)]
    Roles(roles::RolesCmd),
    /// API keys: list, create (the key is shown once), delete.
    #[command(subcommand)]
    Apikeys(apikeys::ApikeysCmd),
    /// Event subscriptions (webhooks, Slack): list, show, create (the secret is shown once), delete.
    #[command(subcommand)]
    Subscriptions(subscriptions::SubscriptionsCmd),
    /// Trainings (play traces and sequencing, one per app): list, show, set.
    #[command(subcommand)]
    Trainings(trainings::TrainingsCmd),
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
    use std::io::Write;
    let sh = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    // Made in memory first: the generator panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(sh, &mut Cli::command(), "rockit", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Fail::new(format!("writing the script: {e}")))
        }
        _ => Ok(()),
    }
}

/// Output into a closed pipe (`rockit … | head -1`) ends the command quietly with exit 0,
/// as the reader asked for no more; any other panic is reported as usual.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() {
    quiet_broken_pipe();
    let cli = Cli::parse();
    let g = cli.global;
    let res: Result<(), Fail> = match cli.cmd {
        Cmd::Login(a) => login::login(&g, a),
        Cmd::Logout(a) => login::logout(&g, a),
        Cmd::Push(a) => push::run(&g, a),
        Cmd::Apps(c) => resources::apps(&g, c),
        Cmd::Builds(c) => builds::run(&g, c),
        Cmd::Deployments(c) => resources::deployments(&g, c),
        Cmd::Tasks(c) => resources::tasks(&g, c),
        Cmd::Retry { task, no_wait } => resources::retry(&g, &task, no_wait),
        Cmd::Ack { task } => resources::ack(&g, &task),
        Cmd::Users(c) => users::run(&g, c),
        Cmd::Roles(c) => roles::run(&g, c),
        Cmd::Apikeys(c) => apikeys::run(&g, c),
        Cmd::Subscriptions(c) => subscriptions::run(&g, c),
        Cmd::Trainings(c) => trainings::run(&g, c),
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
