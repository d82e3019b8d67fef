//! End-to-end: a real master and `bosun agent` in a network namespace the test
//! made as their host, pods from a busybox image imported with `bosun image
//! import --rootfs`, driven with kubectl. What the agent issue's "Done when"
//! asks: isolation (PID 1, hostname, root, capabilities), logs through the
//! master, an OOM kill with back-off, the read-only port, an agent kill -9 that
//! changes nothing, and deletion that leaves nothing behind.

mod common;

use std::process::Command;

use common::host::{can_run_pods, Agent, TestHost};
use common::{eventually, kubectl_bin, ok, stdout, Master};
use serde_json::Value;

const IMAGE: &str = "bosun.test/busybox:e2e";

fn httpd_pod(node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["/bin/sh", "-c"]
    args:
    - echo "pid=$$$$"; echo "hostname=$(hostname)"; echo "image=$(cat /IMAGE)";
      grep CapEff /proc/self/status; echo ready; exec httpd -f -v -p 8080 -h /var/www
"#
    )
}

fn oom_pod(node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  nodeName: {node}
  containers:
  - name: hog
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["tail", "/dev/zero"]
    resources:
      limits:
        memory: 32Mi
"#
    )
}

fn crash_pod(node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: crash
spec:
  nodeName: {node}
  containers:
  - name: crash
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo run; exit 3"]
"#
    )
}

/// CapEff as a bit mask, from a `CapEff:\t00000000a80425fb` line.
fn cap_eff(logs: &str) -> u64 {
    let line = logs
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff line in {logs:?}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

#[test]
fn pods_run_isolated_survive_an_agent_kill_and_leave_nothing_behind() {
    if !can_run_pods("the agent e2e test") {
        return;
    }
    let host = TestHost::new();
    let master = Master::start_in(&host, &[]);
    let mut agent = Agent::start(&master, &host, "node-a");
    agent.import_busybox(IMAGE);

    master.wait_node_ready("node-a");

    master.apply(&httpd_pod("node-a"));
    let running = eventually(60, "pod web to be Running", || {
        let p = master.pod_json("web")?;
        (p["status"]["phase"] == "Running").then_some(p)
    });
    let status = &running["status"]["containerStatuses"][0];
    assert_eq!(status["ready"], true);
    assert_eq!(status["restartCount"], 0);
    assert!(status["containerID"]
        .as_str()
        .unwrap()
        .starts_with("bosun://"));
    assert_eq!(running["status"]["hostIP"], host.ip.as_str());
    assert_eq!(running["status"]["qosClass"], "BestEffort");

    // The container's own view, through kubectl logs (master → agent :10250).
    let logs = eventually(30, "the container's output in kubectl logs", || {
        let out = master.kubectl(&["logs", "web"]);
        let text = stdout(&out);
        text.contains("ready").then_some(text)
    });
    assert!(
        logs.contains("pid=1\n"),
        "not PID 1 of its own namespace: {logs}"
    );
    assert!(
        logs.contains("hostname=web\n"),
        "hostname is not the pod name: {logs}"
    );
    assert!(
        logs.contains("image=bosun-e2e-image\n"),
        "root is not the image: {logs}"
    );
    let caps = cap_eff(&logs);
    assert_eq!(caps & (1 << CAP_SYS_ADMIN), 0, "CAP_SYS_ADMIN in {caps:x}");
    assert_eq!(caps & (1 << CAP_NET_ADMIN), 0, "CAP_NET_ADMIN in {caps:x}");
    assert_ne!(caps, 0, "the default capability set is missing");
    let tail = stdout(&master.kubectl(&["logs", "web", "--tail=1"]));
    assert_eq!(tail.trim(), "ready");
    let stamped = stdout(&master.kubectl(&["logs", "web", "--timestamps"]));
    assert!(
        stamped
            .lines()
            .all(|l| l.len() > 20 && l.as_bytes()[4] == b'-'),
        "{stamped}"
    );

    // The read-only port.
    let healthz = host.curl(&format!("http://{}:10255/healthz", host.ip));
    assert_eq!(healthz.as_deref(), Some("ok"));
    let pods: Value = serde_json::from_str(
        &host
            .curl(&format!("http://{}:10255/pods", host.ip))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pods["kind"], "PodList");
    assert!(pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["metadata"]["name"] == "web"));
    let spec: Value = serde_json::from_str(
        &host
            .curl(&format!("http://{}:10255/spec", host.ip))
            .unwrap(),
    )
    .unwrap();
    assert!(spec["num_cores"].as_u64().unwrap() >= 1);
    assert!(spec["memory_capacity"].as_u64().unwrap() > 0);

    let summary: Value = serde_json::from_str(
        &host
            .curl(&format!("http://{}:10255/stats/summary", host.ip))
            .unwrap(),
    )
    .unwrap();
    let web = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "web")
        .unwrap_or_else(|| panic!("no web pod in the summary: {summary}"));
    assert!(
        web["containers"][0]["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{web}"
    );

    // kubectl logs -f streams (and is ended by us).
    let mut follow = master
        .in_netns(&kubectl_bin())
        .arg("--kubeconfig")
        .arg(master.kubeconfig())
        .args(["logs", "-f", "web"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("ready") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        seen.contains("hostname=web"),
        "kubectl logs -f gave {seen:?}"
    );

    // A crashing container: restarted, and --previous shows the run before.
    master.apply(&crash_pod("node-a"));
    eventually(60, "the crasher to have restarted", || {
        let p = master.pod_json("crash")?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)).then_some(())
    });
    let previous = stdout(&master.kubectl(&["logs", "crash", "--previous"]));
    assert_eq!(previous.trim(), "run", "kubectl logs --previous");
    let p = master.pod_json("crash").unwrap();
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 3, "{p}");
    assert_eq!(last["reason"], "Error");

    // A container over its memory limit is OOM-killed and restarted with back-off.
    master.apply(&oom_pod("node-a"));
    let hog = eventually(90, "the hog to be OOMKilled and restarted", || {
        let p = master.pod_json("hog")?;
        let s = &p["status"]["containerStatuses"][0];
        let oom = s["lastState"]["terminated"]["reason"] == "OOMKilled"
            || s["state"]["terminated"]["reason"] == "OOMKilled";
        (oom && s["restartCount"].as_u64() >= Some(1)).then_some(p)
    });
    assert_eq!(hog["status"]["qosClass"], "Burstable");
    eventually(60, "the hog to back off", || {
        let p = master.pod_json("hog")?;
        (p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff")
            .then_some(())
    });

    // kill -9 of the agent and a restart change nothing about the running pod.
    let before = master.pod_json("web").unwrap()["status"]["containerStatuses"][0].clone();
    agent.kill();
    agent.spawn();
    eventually(30, "the restarted agent to serve again", || {
        host.curl(&format!("http://{}:10255/healthz", host.ip))
            .filter(|b| b == "ok")
    });
    // Give it a moment's worth of syncs, then compare.
    eventually(30, "the restarted agent to report the pod", || {
        let pods: Value =
            serde_json::from_str(&host.curl(&format!("http://{}:10255/pods", host.ip))?).ok()?;
        pods["items"]
            .as_array()?
            .iter()
            .any(|p| p["metadata"]["name"] == "web")
            .then_some(())
    });
    let after = master.pod_json("web").unwrap()["status"]["containerStatuses"][0].clone();
    assert_eq!(after["restartCount"], 0, "{after}");
    assert_eq!(after["containerID"], before["containerID"]);
    assert_eq!(
        after["state"]["running"]["startedAt"],
        before["state"]["running"]["startedAt"]
    );
    let logs = stdout(&master.kubectl(&["logs", "web"]));
    assert!(
        logs.contains("ready"),
        "logs lost over the agent restart: {logs}"
    );

    // A pod deleted while the agent is down is cleaned up when it comes back.
    let crash = master.pod_json("crash").unwrap();
    let crash_uid = crash["metadata"]["uid"].as_str().unwrap().to_string();
    agent.kill();
    ok(master.kubectl(&["delete", "pod", "crash", "--force", "--grace-period=0"]));
    assert!(agent.data_dir().join("pods").join(&crash_uid).exists());
    agent.spawn();
    let removed = common::poll(30, || {
        !agent.data_dir().join("pods").join(&crash_uid).exists()
    });
    assert!(
        removed,
        "the restarted agent left the deleted pod's state: {}",
        agent.log_text()
    );

    // Deleting the pods removes every kernel object they had.
    ok(master.kubectl(&[
        "delete",
        "pod",
        "web",
        "hog",
        "--wait=true",
        "--timeout=60s",
    ]));
    // The runtime moves a removed pod's files into `.trash` and deletes them in
    // the background: that must end empty too.
    let entries = |dir: &std::path::Path| -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == ".trash" {
                out.extend(
                    std::fs::read_dir(e.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|t| format!(".trash/{}", t.file_name().to_string_lossy())),
                );
            } else {
                out.push(name);
            }
        }
        out
    };
    let mut last = String::new();
    let gone = common::poll(30, || {
        let pods = entries(&agent.data_dir().join("pods"));
        let logs = entries(&agent.log_root());
        let cgroups: Vec<_> = agent
            .cgroup_dirs()
            .into_iter()
            .filter(|d| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("pod"))
            })
            .collect();
        let mounts = agent.mounts();
        last = format!("pods {pods:?} logs {logs:?} cgroups {cgroups:?} mounts {mounts:?}");
        pods.is_empty() && logs.is_empty() && cgroups.is_empty() && mounts.is_empty()
    });
    assert!(
        gone,
        "left behind after deleting the pods: {last}\nagent log:\n{}",
        agent.log_text()
    );
    // lo, eth0 and its peer, and the pod bridge: no pod's veth is left. The
    // kernel removes a pair once its pod's namespace is gone, a moment later.
    let links_now = || {
        let out = Command::new("ip")
            .args(["-n", &host.name, "-o", "link"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    common::poll(10, || links_now().lines().count() == 4);
    let links = links_now();
    assert_eq!(links.lines().count(), 4, "links left in the host: {links}");
    assert!(links.contains("bosun0"), "{links}");
}

#[test]
fn two_agents_on_one_machine_do_not_collide() {
    if !can_run_pods("the two-agent e2e test") {
        return;
    }
    let (host_a, host_b) = TestHost::pair();
    let master = Master::start_in(&host_a, &[]);
    let agent_a = Agent::start(&master, &host_a, "node-a");
    let agent_b = Agent::start(&master, &host_b, "node-b");
    agent_a.import_busybox(IMAGE);
    agent_b.import_busybox(IMAGE);
    eventually(60, "both nodes to be Ready", || {
        let out = master.kubectl(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
        ]);
        (stdout(&out).trim() == "True True").then_some(())
    });
    // The same pod name in two namespaces, one on each node.
    ok(master.kubectl(&["create", "namespace", "other"]));
    master.apply(&httpd_pod("node-a"));
    let other = httpd_pod("node-b").replace("  name: web\n", "  name: web\n  namespace: other\n");
    master.apply(&other);
    for ns in ["default", "other"] {
        eventually(60, "both pods to run", || {
            let out = master.kubectl(&[
                "get",
                "pod",
                "web",
                "-n",
                ns,
                "-o",
                "jsonpath={.status.phase}",
            ]);
            (stdout(&out) == "Running").then_some(())
        });
    }
    let logs = eventually(30, "logs from the second node", || {
        let text = stdout(&master.kubectl(&["logs", "web", "-n", "other"]));
        text.contains("ready").then_some(text)
    });
    assert!(logs.contains("hostname=web"), "{logs}");
    // Each agent's pods live under its own cgroup parent and data dir.
    let pods_of = |a: &Agent| {
        a.cgroup_dirs()
            .into_iter()
            .filter(|d| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("pod"))
            })
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(pods_of(&agent_a).len(), 1);
    assert_eq!(pods_of(&agent_b).len(), 1);
    assert!(pods_of(&agent_a).is_disjoint(&pods_of(&agent_b)));
    // Deleting one node's pod leaves the other's running.
    ok(master.kubectl(&["delete", "pod", "web", "--wait=true", "--timeout=60s"]));
    let out = master.kubectl(&[
        "get",
        "pod",
        "web",
        "-n",
        "other",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(stdout(&out), "Running");
    assert!(pods_of(&agent_a).is_empty());
    assert_eq!(pods_of(&agent_b).len(), 1);
}

#[test]
fn init_containers_volumes_and_env_come_before_the_containers() {
    if !can_run_pods("the init-container e2e test") {
        return;
    }
    let host = TestHost::new();
    let master = Master::start_in(&host, &[]);
    let agent = Agent::start(&master, &host, "node-a");
    agent.import_busybox(IMAGE);
    ok(master.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=greeting=hello",
    ]));
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: job
  labels: {{app: job}}
spec:
  nodeName: node-a
  restartPolicy: Never
  volumes:
  - name: work
    emptyDir: {{}}
  - name: settings
    configMap: {{name: settings}}
  initContainers:
  - name: prepare
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo from-init > /work/msg"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /work/msg; echo mode=$MODE app=$APP; cat /etc/settings/greeting; echo; echo $(POD_NAME)"]
    env:
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}
    - name: APP
      valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: settings, mountPath: /etc/settings, readOnly: true}}
"#
    );
    master.apply(&manifest);
    let done = eventually(60, "the pod to succeed", || {
        let p = master.pod_json("job")?;
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")).then_some(p)
    });
    assert_eq!(done["status"]["phase"], "Succeeded", "{done}");
    let init = &done["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["reason"], "Completed", "{init}");
    let main = &done["status"]["containerStatuses"][0];
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{main}");
    let logs = stdout(&master.kubectl(&["logs", "job", "-c", "main"]));
    assert_eq!(logs, "from-init\nmode=fast app=job\nhello\njob\n");
}
