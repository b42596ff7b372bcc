//! `rockit login` and `rockit logout`: the two-step login (username + password → the
//! user's organizations → one organization's token pair), the one-step form with `--org`,
//! and API keys; the result is saved in the profile (config.rs).

use crate::api::{store_tokens, Api, Global};
use crate::fail::Fail;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};

/// Log in to an Edge and save the session (or an API key) in the profile.
///
/// With a username and password, the organization comes from --org, else from the user's
/// only organization, else from a choice at the terminal. The access token is refreshed
/// automatically while the refresh token lives. With --api-key (or $ROCKIT_API_KEY), the key
/// is checked and saved instead; with $ROCKIT_ORG and $ROCKIT_USER (or --org and
/// --username) it is sent as the machine-user triple.
#[derive(clap::Args)]
pub struct LoginArgs {
    /// The username (default: $ROCKIT_USER, else asked at the terminal).
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// The organization to log in to (default: $ROCKIT_ORG, else the user's only one, else asked).
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Save this API key (rk_…) instead of logging in with a password.
    #[arg(long, value_name = "KEY", conflicts_with = "password_stdin")]
    pub api_key: Option<String>,
    /// Ask for a shorter access-token lifetime, in seconds (the server caps it).
    #[arg(long, value_name = "SECONDS")]
    pub access_ttl: Option<u64>,
    /// Ask for a shorter refresh-token (session) lifetime, in seconds (the server caps it).
    #[arg(long, value_name = "SECONDS")]
    pub refresh_ttl: Option<u64>,
}

/// End the session on the server and delete the stored credentials.
#[derive(clap::Args)]
pub struct LogoutArgs {
    /// End every session of the user, in every organization.
    #[arg(long)]
    pub all: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Both standard input and standard error are a terminal: questions can be asked.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn ask(prompt: &str) -> Result<String, Fail> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// Reads a secret at the terminal with echo off (through stty; echo stays on if that fails).
fn ask_secret(prompt: &str) -> Result<String, Fail> {
    let stty = |arg: &str| {
        std::fs::File::open("/dev/tty")
            .ok()
            .and_then(|tty| std::process::Command::new("stty").arg(arg).stdin(tty).status().ok())
            .is_some_and(|s| s.success())
    };
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let off = stty("-echo");
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    if off {
        stty("echo");
        eprintln!();
    }
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(g: &Global, a: LoginArgs) -> Result<(), Fail> {
    let api = Api::open(g)?;
    if let Some(key) = a.api_key.clone().or_else(|| env("ROCKIT_API_KEY")) {
        return login_key(
            api,
            &key,
            a.org.or_else(|| env("ROCKIT_ORG")),
            a.username.or_else(|| env("ROCKIT_USER")),
        );
    }
    let username = match a.username.or_else(|| env("ROCKIT_USER")) {
        Some(u) => u,
        None if interactive() => ask("Username: ")?,
        None => return Err(Fail::new("no username: give --username NAME (or set ROCKIT_USER)")),
    };
    let password = if a.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else if interactive() {
        ask_secret("Password: ")?
    } else {
        return Err(Fail::new("no password: give --password-stdin and the password on standard input, or run in a terminal"));
    };
    if password.is_empty() {
        return Err(Fail::new("empty password"));
    }
    let mut ttls = json!({});
    if let Some(t) = a.access_ttl {
        ttls["accessTTL"] = json!(t);
    }
    if let Some(t) = a.refresh_ttl {
        ttls["refreshTTL"] = json!(t);
    }
    let with_ttls = |mut body: Value| {
        if let (Some(b), Some(t)) = (body.as_object_mut(), ttls.as_object()) {
            b.extend(t.clone());
        }
        body
    };
    let answer = match a.org.or_else(|| env("ROCKIT_ORG")) {
        Some(org) => api.public(
            Method::POST,
            "/be/v1/login",
            None,
            Some(&with_ttls(json!({"username": username, "password": password, "orgName": org}))),
        )?,
        None => {
            let sel = api.public(
                Method::POST,
                "/be/v1/login",
                None,
                Some(&json!({"username": username, "password": password})),
            )?;
            let orgs: Vec<(String, String)> = sel["orgs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|o| {
                            Some((
                                o["name"].as_str()?.to_string(),
                                o["label"].as_str().unwrap_or("").to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let org = choose_org(&username, &orgs, !a.password_stdin && interactive())?;
            let tok = sel["orgSelectionToken"].as_str().unwrap_or_default();
            api.public(
                Method::POST,
                "/be/v1/login",
                None,
                Some(&with_ttls(json!({"orgSelectionToken": tok, "orgName": org}))),
            )?
        }
    };
    let mut p = api.profile.clone();
    p.server = Some(api.server.clone());
    p.clear_credentials();
    store_tokens(&mut p, &answer);
    api.cfg.save(&p)?;
    println!(
        "logged in to {} as {} in {} (profile {})",
        api.server,
        p.username.as_deref().unwrap_or("?"),
        p.org.as_deref().unwrap_or("?"),
        api.cfg.name
    );
    Ok(())
}

/// The organization to log in to: the only one, or the one picked at the terminal.
fn choose_org(user: &str, orgs: &[(String, String)], can_ask: bool) -> Result<String, Fail> {
    match orgs {
        [] => Err(Fail::new(format!("{user} is not a member of any organization"))),
        [(only, _)] => Ok(only.clone()),
        _ if can_ask => {
            eprintln!("{user} belongs to several organizations:");
            for (i, (n, l)) in orgs.iter().enumerate() {
                eprintln!(
                    "  {}) {n}{}",
                    i + 1,
                    if l.is_empty() { String::new() } else { format!(" ({l})") }
                );
            }
            let pick = ask("Organization (number or name): ")?;
            if let Some((n, _)) = orgs.iter().find(|(n, _)| *n == pick) {
                return Ok(n.clone());
            }
            match pick.parse::<usize>() {
                Ok(i) if (1..=orgs.len()).contains(&i) => Ok(orgs[i - 1].0.clone()),
                _ => Err(Fail::new(format!("no organization {pick:?}"))),
            }
        }
        _ => {
            let names: Vec<&str> = orgs.iter().map(|(n, _)| n.as_str()).collect();
            Err(Fail::new(format!(
                "{user} belongs to several organizations ({}): choose one with --org",
                names.join(", ")
            )))
        }
    }
}

/// Checks an API key (it must list itself) and saves it.
fn login_key(
    mut api: Api,
    key: &str,
    org: Option<String>,
    user: Option<String>,
) -> Result<(), Fail> {
    let Some(key_id) =
        key.strip_prefix("rk_").and_then(|r| r.split_once('_')).map(|(id, _)| id.to_string())
    else {
        return Err(Fail::new("not an API key: expected rk_<key id>_<secret>"));
    };
    api.use_key(key, org.clone(), user.clone());
    let v = api.get("/be/v1/apikeys", &[("limit", "1000".to_string())])?;
    let mine = v["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["keyId"] == key_id.as_str()))
        .cloned();
    let mut p = api.profile.clone();
    p.server = Some(api.server.clone());
    p.clear_credentials();
    p.api_key = Some(key.to_string());
    p.org = org.or_else(|| mine.as_ref().and_then(|k| k["orgName"].as_str().map(str::to_string)));
    p.username =
        user.or_else(|| mine.as_ref().and_then(|k| k["username"].as_str().map(str::to_string)));
    api.cfg.save(&p)?;
    println!(
        "API key {key_id} saved for {} as {} in {} (profile {})",
        api.server,
        p.username.as_deref().unwrap_or("?"),
        p.org.as_deref().unwrap_or("?"),
        api.cfg.name
    );
    Ok(())
}

pub fn logout(g: &Global, a: LogoutArgs) -> Result<(), Fail> {
    let api = Api::open(g)?;
    let mut p = api.profile.clone();
    let same_server =
        p.server.as_deref().map(|s| s.trim_end_matches('/')) == Some(api.server.as_str());
    if !same_server || !p.has_credentials() {
        return Err(Fail::new(format!(
            "not logged in to {} (profile {})",
            api.server, api.cfg.name
        )));
    }
    let mut note = "";
    if let Some(tok) = p.refresh_token.clone().or_else(|| p.access_token.clone()) {
        let body = a.all.then(|| json!({"all": true}));
        match api.public(Method::POST, "/be/v1/logout", Some(&tok), body.as_ref()) {
            Ok(_) => {}
            Err(e) if e.to_string().starts_with("unauthorized:") => {
                note = " (the session had already ended)"
            }
            Err(e) => return Err(e),
        }
    } else if a.all {
        return Err(Fail::new("--all needs a login session; this profile holds an API key"));
    }
    let key = p.api_key.is_some();
    p.clear_credentials();
    api.cfg.save(&p)?;
    if key {
        println!(
            "API key removed from profile {} (the key itself stays valid until revoked)",
            api.cfg.name
        );
    } else {
        println!("logged out of {} (profile {}){note}", api.server, api.cfg.name);
    }
    Ok(())
}
