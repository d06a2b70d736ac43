//! `ferrolb`: the one binary. Each subcommand is a module of `commands`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod agent;
mod commands;
mod embedded;
mod metrics;

/// A MetalLB-compatible load balancer for bare-metal Kubernetes and standalone hosts.
#[derive(Parser)]
#[command(name = "ferrolb", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions of the metallb.io resources, as YAML.
    Crds,
    /// Validate a directory of manifests; print one line per problem.
    Check(commands::check::Args),
    /// Show which address each LoadBalancer Service of a manifest directory gets.
    Allocate(commands::allocate::Args),
    /// Run the standalone node agent: allocate, elect and announce from a manifest
    /// directory, without Kubernetes.
    Run(agent::Args),
    /// Show what a standalone agent is doing: pools, Services, announcements, members.
    Status(commands::status::Args),
    /// Run the Kubernetes controller: give LoadBalancer Services addresses, with leader
    /// election between replicas.
    Controller(commands::controller::Args),
    /// Run the Kubernetes speaker on this node: announce the addresses the controller
    /// assigned (layer 2 and BGP), write ServiceL2Status / ServiceBGPStatus.
    Speaker(commands::speaker::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Crds => commands::crds::run(&mut out),
        Command::Check(args) => commands::check::run(&args, &mut out),
        Command::Allocate(args) => commands::allocate::run(&args, &mut out),
        Command::Run(args) => agent::run(args),
        Command::Status(args) => commands::status::run(&args, &mut out),
        Command::Controller(args) => commands::controller::run_controller(args),
        Command::Speaker(args) => commands::speaker::run_speaker(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferrolb: {e}");
            ExitCode::from(2)
        }
    }
}
