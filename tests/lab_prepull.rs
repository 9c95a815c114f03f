//! `--prepull` on the real testkit lab (issue 18, item 1): an image built
//! on one worker only (moby#36045: no registry has it), used by a service
//! whose tasks all run there. Upgrading that worker drains it; without the
//! image, the other worker would reject the moved tasks ("No such image").
//! `apply --prepull` copies the image there (engine to engine, through the
//! controller) before the drain: the tasks move, run, and the probe loses
//! nothing.
//!
//! Its own lab, "pp" (172.31.53.0/24, 3 managers + 2 workers), removed at
//! the end; one worker upgraded (`--nodes`), to stay short. `#[ignore]`d in
//! a plain `cargo test`; the lab suite runs it with `--ignored`, as root. A
//! lab that cannot start fails the test: nothing is skipped.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::FreshLab;

const PIN: &str = "26.1.5";
const SERVICE: &str = "pp-local";

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn prepull_copies_an_image_built_on_the_drained_node_to_the_receiving_node_before_the_drain() {
    let t = Instant::now();
    let fresh = FreshLab::up("pp", "172.31.53.0/24");
    let lab = &fresh.lab;
    let (w1, w2) = (lab.workers()[0].name.clone(), lab.workers()[1].name.clone());

    // An image only w1 has: committed from the probe's image there, so its
    // ID is new (a tag of an image every node has would prove nothing). Its
    // registry refuses connections at once (no registry in the lab): the
    // engine's pull before a task start fails fast, the local image is used.
    let probe = lab
        .on_manager("docker service inspect probe-server --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}'")
        .unwrap();
    let probe = probe.trim().split('@').next().unwrap().to_string();
    let local = "localhost:1/pp-built-here:1";
    let built = lab
        .exec_sh(
            &w1,
            &format!(
                "docker create --name pp-build {probe} >/dev/null && \
                 docker commit --change 'LABEL built-on={w1}' pp-build {local} >/dev/null && \
                 docker rm pp-build >/dev/null && docker image inspect -f '{{{{.Id}}}}' {local}"
            ),
        )
        .unwrap();
    let built = built.trim().to_string();
    assert!(built.starts_with("sha256:"), "{built}");
    let image_on = |node: &str| {
        lab.exec_sh(
            node,
            &format!("docker image inspect -f '{{{{.Id}}}}' {local} 2>/dev/null || true"),
        )
        .unwrap()
        .trim()
        .to_string()
    };
    assert_eq!(image_on(&w2), "", "{w2} must not have {local} yet");

    // w2 paused while the service is created, so that both tasks start on w1.
    lab.on_manager(&format!(
        "docker node update --availability pause {w2} >/dev/null && \
         docker service create --detach --name {SERVICE} --replicas 2 --constraint node.role==worker \
         --network probe-net --endpoint-mode dnsrr --init --no-resolve-image --stop-grace-period 2s \
         {local} server --port 8080 >/dev/null && \
         docker node update --availability active {w2} >/dev/null"
    ))
    .unwrap();
    let nodes_of_tasks = || {
        let out = lab
            .on_manager(&format!(
                "docker service ps {SERVICE} --filter desired-state=running --format '{{{{.Node}}}} {{{{.CurrentState}}}}'"
            ))
            .unwrap();
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(nodes_of_tasks().len() == 2
        && nodes_of_tasks()
            .iter()
            .all(|l| l.starts_with(&format!("{w1} Running"))))
    {
        assert!(
            Instant::now() < deadline,
            "{SERVICE} does not run on {w1}: {:?}",
            nodes_of_tasks()
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // The plan shows the copy, as a step before any drain.
    let args = [
        "plan",
        "--pin",
        PIN,
        "--nodes",
        &w1,
        "--prepull",
        "-o",
        "json",
    ];
    let out = fresh.run(&args);
    assert_eq!(out.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["steps"][0]["action"], "prepull", "{:#}", plan["steps"]);
    // The node is staged (debian-apt) in the batch before its drain.
    assert_eq!(plan["steps"][1]["action"], "stage");
    assert_eq!(plan["steps"][2]["action"], "drain");
    let transfers = plan["prepull"].as_array().expect("plan.prepull");
    assert_eq!(transfers.len(), 1, "{transfers:#?}");
    assert_eq!(transfers[0]["image"], local);
    assert_eq!(transfers[0]["node"], w2.as_str());
    assert_eq!(transfers[0]["from"], w1.as_str());
    let finding = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "image-availability")
        .expect("image-availability reports what --prepull fixes");
    assert_eq!(finding["severity"], "info", "{finding}");

    let since = SystemTime::now();
    let out = fresh.run(&["apply", "--pin", PIN, "--nodes", &w1, "--prepull", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "apply --prepull succeeds");

    assert_eq!(image_on(&w2), built, "{w2} holds the image built on {w1}");
    let journal = fresh.journal();
    let started = |action: &str| {
        journal
            .iter()
            .position(|e| e["event"] == "step-started" && e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} step in the journal"))
    };
    let prepulled = journal
        .iter()
        .position(|e| e["event"] == "step-finished" && e["action"] == "prepull")
        .expect("the prepull step finished");
    assert!(prepulled < started("drain"), "the copy precedes the drain");
    // The drain moved both tasks to w2 (a drained node's tasks do not come
    // back when it is active again), where they run the copied image.
    let tasks = nodes_of_tasks();
    assert!(
        tasks.len() == 2
            && tasks
                .iter()
                .all(|l| l.starts_with(&format!("{w2} Running"))),
        "{SERVICE}'s tasks run on {w2}: {tasks:?}"
    );
    fresh.assert_no_lost_requests(since);
    eprintln!("prepull lab test: {:.0} s", t.elapsed().as_secs_f64());
}
