//! kill -9 during a storm of writes loses no acknowledged write.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WRITERS: usize = 4;

/// What one writer thread saw acknowledged.
#[derive(Default)]
struct Acked {
    /// Distinct objects, each written once: name -> host.
    created: Vec<(String, String)>,
    /// One object rewritten over and over: last acknowledged sequence number.
    counter: Option<u64>,
    counter_name: String,
}

fn writer(base: String, token: String, round: usize, t: usize, stop: Arc<AtomicBool>) -> Acked {
    let client = client();
    let mut acked = Acked {
        counter_name: format!("counter-{round}-{t}"),
        ..Default::default()
    };
    let put = |name: &str, body: &Value| {
        client
            .put(format!("{base}{VS}/{name}"))
            .bearer_auth(&token)
            .json(body)
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    };
    for i in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let name = format!("w-{round}-{t}-{i}");
        let host = format!("reviews-{round}-{t}-{i}");
        if put(&name, &virtual_service(&name, &host)).is_none() {
            break;
        }
        acked.created.push((name, host));
        let mut counter = virtual_service(&acked.counter_name, "ratings");
        counter["metadata"]["labels"]["seq"] = i.to_string().into();
        if put(&acked.counter_name.clone(), &counter).is_none() {
            break;
        }
        acked.counter = Some(i);
    }
    acked
}

#[test]
fn kill_9_during_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: Vec<(String, String)> = Vec::new();
    let mut counters: Vec<(String, u64)> = Vec::new();
    for round in 0..3 {
        let mut weftd = Weftd::start(dir.path());
        check(&weftd, &expected, &counters);

        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|t| {
                let (base, token, stop) = (weftd.base.clone(), weftd.token.clone(), stop.clone());
                std::thread::spawn(move || writer(base, token, round, t, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rand::random_range(300..1500)));
        weftd.kill();
        stop.store(true, Ordering::Relaxed);
        let mut acked_this_round = 0;
        for w in writers {
            let acked = w.join().unwrap();
            acked_this_round += acked.created.len();
            expected.extend(acked.created);
            if let Some(seq) = acked.counter {
                counters.push((acked.counter_name, seq));
            }
        }
        eprintln!("round {round}: {acked_this_round} creates acknowledged before kill -9");
        assert!(
            acked_this_round > 0,
            "round {round}: no write was acknowledged before the kill"
        );
    }
    let weftd = Weftd::start(dir.path());
    check(&weftd, &expected, &counters);
}

/// Every acknowledged write is there with its content; a rewritten object holds its last
/// acknowledged version or the one in flight when weftd died.
fn check(weftd: &Weftd, expected: &[(String, String)], counters: &[(String, u64)]) {
    let list: Value = weftd.get(VS).json().unwrap();
    let stored: HashMap<String, &Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["metadata"]["name"].as_str().unwrap().to_string(), o))
        .collect();
    for (name, host) in expected {
        let object = stored
            .get(name)
            .unwrap_or_else(|| panic!("acknowledged {name} is missing"));
        assert_eq!(object["spec"]["hosts"][0], host.as_str(), "{name}");
        assert_eq!(
            object["spec"]["http"][0]["route"][0]["destination"]["host"],
            host.as_str()
        );
    }
    for (name, seq) in counters {
        let object = stored
            .get(name)
            .unwrap_or_else(|| panic!("acknowledged {name} is missing"));
        let got: u64 = object["metadata"]["labels"]["seq"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            got == *seq || got == seq + 1,
            "{name}: seq {got}, acknowledged {seq}"
        );
    }
    // Revisions stay coherent: the list's revision covers every object in it.
    let revision: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for object in stored.values() {
        let rv: u64 = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv <= revision);
    }
}
