//! The `rockit` resource commands end to end (the real binary against a real server): list,
//! show, create and delete of apps and deployments, users, roles and subscriptions, with
//! `--json` parsed and the text tables checked; API errors, usage errors, completions, and
//! a server that is down.

use crate::cli_publish::Cli;
use crate::common::*;
use crate::edge_test;
use reqwest::Method;
use serde_json::json;

edge_test!(cli_resource_commands, |b| async move {
    let mut s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, pw) = s.org_admin("ResCo").await;
    let cli = Cli::new();
    cli.login(&s, "ResCo_admin", &pw, &[]).await.ok();

    // Apps.
    let a = cli
        .json(&["apps", "create", "--name", "Alpha", "--label", "Alpha Game", "--max-builds", "2"])
        .await;
    assert_eq!(
        (a["name"].clone(), a["label"].clone(), a["maxBuilds"].clone()),
        (json!("Alpha"), json!("Alpha Game"), json!(2))
    );
    cli.json(&["apps", "create", "--name", "Beta"]).await;
    let line = cli.run(&["apps", "create", "--name", "Beta"]).await.failed().to_string();
    assert!(line.starts_with("rockit: item-exists: "), "{line}");
    let line = cli.run(&["apps", "create", "--name", "x"]).await.failed().to_string();
    assert!(line.starts_with("rockit: invalid-param: "), "{line}");
    let list = cli.json(&["apps", "list"]).await;
    let names: Vec<&str> =
        list.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alpha", "Beta"]);
    assert_eq!(cli.json(&["apps", "list", "--name", "alp"]).await.as_array().unwrap().len(), 1);
    assert_eq!(
        cli.json(&["apps", "list", "--limit", "1", "--order=-name"]).await[0]["name"],
        "Beta"
    );
    let table = cli.run(&["apps", "list"]).await.ok().to_string();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[0].starts_with("NAME   LABEL       BUILD"), "{table}");
    assert!(rows[1].starts_with("Alpha  Alpha Game  -"), "{table}");
    assert_eq!(rows[0].find("STATE"), rows[1].find("ok"), "aligned columns:\n{table}");
    let shown = cli.run(&["apps", "show", "Alpha"]).await.ok().to_string();
    assert!(shown.starts_with("Alpha \"Alpha Game\"\ncurrent build  none yet (push one: rockit push DIR --app Alpha)\n"), "{shown}");
    assert!(
        shown.contains("\nbuilds kept    0 of at most 2\n")
            && shown.contains("\nstate          ok\n"),
        "{shown}"
    );
    let line = cli.run(&["apps", "show", "Nope"]).await.failed().to_string();
    assert!(line.starts_with("rockit: not-found: "), "{line}");
    let del = cli.json(&["apps", "delete", "Beta"]).await;
    assert_eq!(del["message"], "app deleted");
    assert!(del["taskName"].as_str().unwrap().starts_with("t_"));
    assert_eq!(cli.json(&["apps", "list"]).await.as_array().unwrap().len(), 1);

    // Deployments.
    let d = cli
        .json(&[
            "deployments",
            "create",
            "--name",
            "disk",
            "--type",
            "fs",
            "--path",
            "disk",
            "--label",
            "Disk",
        ])
        .await;
    assert_eq!(d["label"], "Disk");
    let d = cli.json(&["deployments", "show", "disk"]).await;
    assert_eq!(d["origin"]["type"], "fs");
    let line = cli
        .run(&["deployments", "create", "--name", "bad", "--type", "fs", "--path", "../outside"])
        .await
        .failed()
        .to_string();
    assert!(line.starts_with("rockit: invalid-param: "), "{line}");
    let r = cli.run(&["deployments", "create", "--name", "nopath", "--type", "fs"]).await;
    assert_eq!(r.code, 2, "usage error: {r:?}");
    cli.json(&["apps", "create", "--name", "Bound", "--deployment", "disk"]).await;
    let line = cli.run(&["deployments", "delete", "disk"]).await.failed().to_string();
    assert!(line.starts_with("rockit: item-in-use: "), "{line}");
    let out = cli.run(&["apps", "delete", "Bound"]).await.ok().to_string();
    assert!(out.starts_with("Bound: app deleted (purge task t_"), "{out}");
    let out = cli.run(&["deployments", "delete", "disk"]).await.ok().to_string();
    assert!(out.starts_with("disk: deployment deleted"), "{out}");
    assert_eq!(cli.json(&["deployments", "list"]).await, json!([]));
    assert_eq!(cli.run(&["deployments", "list"]).await.ok().trim(), "no deployments");

    // Users and roles.
    let users = cli.json(&["users", "list"]).await;
    assert_eq!(users[0]["username"], "ResCo_admin");
    assert_eq!(
        cli.json(&["users", "show", "ResCo_admin"]).await["roles"],
        json!(["Administrators"])
    );
    let roles = cli.json(&["roles", "list"]).await;
    assert_eq!(roles[0]["name"], "Administrators");
    let role = cli.json(&["roles", "show", "Administrators"]).await;
    assert_eq!(role["permissions"]["tasks"], 31);
    let table = cli.run(&["roles", "list"]).await.ok().to_string();
    assert!(table.contains("tasks=CRUDX"), "permissions as letters: {table}");

    // Subscriptions (made through the API: the CLI lists, shows and deletes them).
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/subscriptions",
            Some(json!({"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    r.ok();
    let subs = cli.json(&["subscriptions", "list"]).await;
    assert_eq!(subs[0]["name"], "hook");
    assert_eq!(
        cli.json(&["subscriptions", "show", "hook"]).await["url"],
        "http://127.0.0.1:9/hook"
    );
    let table = cli.run(&["subscriptions", "list"]).await.ok().to_string();
    assert!(table.contains("http://127.0.0.1:9/hook"), "{table}");
    assert!(cli.run(&["subscriptions", "delete", "hook"]).await.ok().contains("unsubscribed"));
    assert_eq!(cli.json(&["subscriptions", "list"]).await, json!([]));

    // Many items are paged through.
    for i in 0..12 {
        s.be(
            &tok,
            Method::POST,
            "/be/v1/apps",
            Some(json!({"name": format!("Many{i:02}"), "label": "m"})),
        )
        .await
        .ok();
    }
    assert_eq!(cli.json(&["apps", "list"]).await.as_array().unwrap().len(), 13);

    // Completions.
    for sh in ["bash", "zsh", "fish"] {
        let out = cli.run(&["completions", sh]).await.ok().to_string();
        assert!(
            out.len() > 1000 && out.contains("push") && out.contains("deployments"),
            "{sh}: {out}"
        );
    }

    // The server down: cannot connect.
    let base = s.base.clone();
    s.stop().await;
    let line = cli.run(&["apps", "list"]).await.failed().to_string();
    assert!(
        line.starts_with(&format!("rockit: cannot connect to {base}: connection refused")),
        "{line}"
    );
    assert!(
        !line.contains("tcp connect error") && !line.contains("client error"),
        "one plain sentence: {line}"
    );
    let line = cli.login(&s, "ResCo_admin", &pw, &[]).await.failed().to_string();
    assert!(line.starts_with(&format!("rockit: cannot connect to {base}")), "{line}");
});
