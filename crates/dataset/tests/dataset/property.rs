//! A property: for random sequences of writes, deletes, exports and imports across three
//! nodes (A and B publish their own symbols, C imports both and writes its own), C's rows
//! of each source's symbols always equal that source's rows at its last export, and C's own
//! rows are exactly what C wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use marketdb_dataset::DatasetRequest;
use marketdb_model::Freq;
use proptest::prelude::*;

use super::fixture::*;

#[derive(Clone, Debug)]
enum Op {
    /// Node 0 (A), 1 (B) or 2 (C) stores `n` 1h bars of its symbol `s` from day `d`.
    Write {
        node: usize,
        s: usize,
        d: u32,
        n: i64,
        seed: u64,
    },
    /// Node `node` deletes its symbol `s` on day `d`.
    Delete { node: usize, s: usize, d: u32 },
    /// Node A or B publishes.
    Export { node: usize },
    /// C imports A's or B's dataset.
    Import { from: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..2usize, 1..4u32, 1..30i64, any::<u64>())
            .prop_map(|(node, s, d, n, seed)| Op::Write { node, s, d, n, seed }),
        1 => (0..3usize, 0..2usize, 1..4u32).prop_map(|(node, s, d)| Op::Delete { node, s, d }),
        2 => (0..2usize).prop_map(|node| Op::Export { node }),
        2 => (0..2usize).prop_map(|from| Op::Import { from }),
    ]
}

/// The symbols of a node: A has AAA0/AAA1, B BBB0/BBB1, C its own CCC0/CCC1.
fn symbol(node: usize, s: usize) -> String {
    format!("{}{s}USDT", ["AAA", "BBB", "CCC"][node])
}

struct World {
    _tmp: tempfile::TempDir,
    dirs: Vec<PathBuf>,
    dbs: Vec<marketdb_store::AsyncMarketDB>,
    lakes: Vec<PathBuf>,
    /// Each source's rows of its symbols at its last export.
    published: Vec<Option<BTreeMap<String, Vec<String>>>>,
    /// What C imported last of each source.
    imported: Vec<Option<BTreeMap<String, Vec<String>>>>,
    /// C's own rows after its last own write or delete.
    own: BTreeMap<String, Vec<String>>,
}

fn rows_of(db: &Path, node: usize) -> BTreeMap<String, Vec<String>> {
    (0..2)
        .map(|s| (symbol(node, s), dump_of(db, &symbol(node, s))))
        .collect()
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    let mut dbs = Vec::new();
    for n in ["a", "b", "c"] {
        let d = tmp.path().join(n);
        std::fs::create_dir_all(&d).unwrap();
        dbs.push(open_db(&d).await);
        dirs.push(d);
    }
    let lakes = vec![tmp.path().join("lake-a"), tmp.path().join("lake-b")];
    World {
        _tmp: tmp,
        dirs,
        dbs,
        lakes,
        published: vec![None, None],
        imported: vec![None, None],
        own: (0..2).map(|s| (symbol(2, s), Vec::new())).collect(),
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut w = world().await;
    for op in ops {
        let c_writes = matches!(op, Op::Write { node: 2, .. } | Op::Delete { node: 2, .. });
        match op {
            Op::Write {
                node,
                s,
                d,
                n,
                seed,
            } => {
                let sym = symbol(node, s);
                let bars: Vec<_> = (0..n)
                    .map(|i| {
                        kline(
                            &sym,
                            Freq::H1,
                            day(d) + i * H,
                            seed % 7,
                            (seed % 13) + i as u64,
                        )
                    })
                    .collect();
                w.dbs[node].store_data(bars, Freq::H1).await.unwrap();
            }
            Op::Delete { node, s, d } => {
                w.dbs[node]
                    .delete_range(&[symbol(node, s)], days(d, d), Freq::H1)
                    .await
                    .unwrap();
            }
            Op::Export { node } => {
                marketdb_dataset::export_dataset(
                    &w.dbs[node],
                    &w.lakes[node],
                    &DatasetRequest::default(),
                )
                .await
                .unwrap();
                w.published[node] = Some(rows_of(&w.dirs[node].join("market.db"), node));
            }
            Op::Import { from } => {
                if w.published[from].is_none() {
                    continue;
                }
                let report = marketdb_dataset::import_dataset(&w.dbs[2], &w.lakes[from])
                    .await
                    .unwrap();
                prop_assert!(report.failed.is_empty(), "{report:?}");
                w.imported[from] = w.published[from].clone();
            }
        }
        // C holds, of each source's symbols, what it last imported of it; sources that C
        // never imported are absent; C's own rows are only its own doing.
        let c_db = w.dirs[2].join("market.db");
        if c_writes {
            w.own = rows_of(&c_db, 2);
        }
        prop_assert_eq!(&rows_of(&c_db, 2), &w.own, "C's own rows");
        for from in 0..2 {
            let held = rows_of(&c_db, from);
            match &w.imported[from] {
                Some(want) => prop_assert_eq!(&held, want, "source {}", from),
                None => prop_assert!(held.values().all(Vec::is_empty)),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn an_importing_node_holds_what_its_sources_cover_and_its_own_rows(
        ops in proptest::collection::vec(op(), 1..14),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}
