//! `delivery-svc`: serve the API and run the messaging workers (the default), run only the
//! workers, migrate, mint a token, print the OpenAPI document, rebuild the read models. Every setting is a flag or an environment variable;
//! see `delivery-svc --help`.

use std::error::Error;
use std::process::ExitCode;

use chrono::{Duration, Utc};
use clap::{Parser, Subcommand};
use delivery_svc::app::{self, Processes};
use delivery_svc::auth::{IdentityClaims, KeyMode, PRINCIPAL_ROLES, TokenAuthority, role_name};
use delivery_svc::config::{self, Config};
use delivery_svc::domain::{Principal, PrincipalRole};
use delivery_svc::http;

/// glibc's malloc spent ~9 % of the service's CPU under load, much of it in contention
/// between the runtime's threads; mimalloc keeps per-thread heaps (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The delivery service: delivery orders of an online bookstore as a state machine.
#[derive(Debug, Parser)]
#[command(name = "delivery-svc", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database, serve the HTTP API and run the messaging workers (what runs
    /// when no command is given).
    Serve(ServeArgs),
    /// Migrate the database and run only the workers: the payment consumer, the outbox
    /// relay, the booker and the watchdogs.
    Worker,
    /// Apply the database migrations, then exit.
    Migrate,
    /// Print a bearer token signed with JWT_SECRET.
    Token(TokenArgs),
    /// Print the OpenAPI document (JSON).
    Openapi,
    /// Rebuild the read models from the event store, then exit.
    RebuildProjections,
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// Serve the API only; workers run elsewhere (`delivery-svc worker`).
    #[arg(long)]
    no_workers: bool,
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// customer, partner, operator, service or admin.
    #[arg(long, value_parser = parse_role)]
    role: PrincipalRole,
    /// The token's subject (`sub`).
    #[arg(long)]
    sub: String,
    /// Required for customers.
    #[arg(long)]
    customer_id: Option<String>,
    /// Required for partners.
    #[arg(long)]
    partner_id: Option<String>,
    /// How long the token is valid, with its unit: `90s`, `30m`, `12h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
}

fn parse_role(raw: &str) -> Result<PrincipalRole, String> {
    PRINCIPAL_ROLES
        .into_iter()
        .find(|&role| role_name(role) == raw)
        .ok_or_else(|| {
            let names: Vec<_> = PRINCIPAL_ROLES.into_iter().map(role_name).collect();
            format!("not one of {}", names.join(", "))
        })
}

/// A duration as every setting takes one ([`config::parse_duration`]).
fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let ttl = config::parse_duration(raw)?;
    Duration::from_std(ttl).map_err(|_| format!("{raw:?} is too long"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    let config = cli.config;
    match cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()))
    {
        Command::Serve(args) => {
            let _log = app::init_tracing(&config.log)?;
            let processes = if args.no_workers {
                Processes::ApiOnly
            } else {
                Processes::ApiAndWorkers
            };
            app::run(config, processes).await?;
        }
        Command::Worker => {
            let _log = app::init_tracing(&config.log)?;
            app::run(config, Processes::WorkersOnly).await?;
        }
        Command::Migrate => {
            let _log = app::init_tracing(&config.log)?;
            app::open_deliveries(&config).await?;
            println!("migrated");
        }
        Command::RebuildProjections => {
            let _log = app::init_tracing(&config.log)?;
            let deliveries = app::open_deliveries(&config).await?;
            let events = deliveries.rebuild_projections().await?;
            println!("rebuilt the read models from {events} events");
        }
        Command::Openapi => println!("{}", http::openapi_json()),
        Command::Token(args) => println!("{}", mint(&config, args)?),
    }
    Ok(())
}

fn mint(config: &Config, args: TokenArgs) -> Result<String, Box<dyn Error>> {
    let authority = TokenAuthority::from_config(&config.jwt)?;
    let signer = match (authority.mode(), authority.signer()) {
        (KeyMode::SharedSecret, Some(signer)) => signer,
        _ => {
            return Err("`token` signs with JWT_SECRET; set it (with a public key the identity provider issues \
                        tokens, and development mode prints its own at start)"
                .into());
        }
    };
    let principal = Principal::try_from(IdentityClaims {
        sub: args.sub,
        role: args.role,
        customer_id: args.customer_id,
        partner_id: args.partner_id,
    })?;
    Ok(signer.mint(&principal, Utc::now(), args.ttl)?)
}
