//! A directory of adversarial runs, one file per seed, so that a long sweep (`spec/verify.md`
//! §8: 1,000 seeds are many CPU-hours) survives being stopped and resumes with the same
//! command.
//!
//! `DIR/plan.json` records what decides a run's result besides its seed and the code: the mesh
//! sizes, the link kind and the settings the caller names (the bench's `ADV_*` knobs,
//! `babelctl`'s adversaries). A store opened with another plan is refused, so runs of two
//! configurations never mix in one report. A change of the code is not detected: use a new
//! directory after one. `DIR/seed-N.json` is seed N's [`AdversaryRun`], written beside its place
//! and renamed, so a process killed at any instant leaves either the whole run or none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::adversary::{AdversaryConfig, AdversaryRun, SweepPlan, SweepReport, sweep_with};

/// Errors opening or writing a [`RunStore`].
#[derive(Debug, thiserror::Error)]
pub enum RunStoreError {
    /// A file or the directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `plan.json` is not a plan.
    #[error("{path}: not a plan: {source}")]
    BadPlan {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A run's file does not parse, or holds another seed.
    #[error("{path}: not this seed's run: {reason}")]
    BadRun {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The directory holds runs of another plan.
    #[error("{dir} holds runs of another plan:\n  {stored}\nthis one:\n  {wanted}")]
    OtherPlan {
        /// The directory.
        dir: PathBuf,
        /// Its plan, as JSON.
        stored: String,
        /// The plan asked for, as JSON.
        wanted: String,
    },
}

/// What a store's runs were made with (`plan.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StoredPlan {
    min_nodes: usize,
    max_nodes: usize,
    kind: String,
    knobs: BTreeMap<String, String>,
}

/// Runs kept one file per seed in a directory.
#[derive(Clone, Debug)]
pub struct RunStore {
    dir: PathBuf,
}

impl RunStore {
    /// Opens `dir` for `plan` and `settings` (creating it and its `plan.json` if new); refuses
    /// a directory whose runs were made with another plan or other settings.
    pub fn open(
        dir: &Path,
        plan: &SweepPlan,
        settings: BTreeMap<String, String>,
    ) -> Result<RunStore, RunStoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RunStoreError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let want = StoredPlan {
            min_nodes: plan.min_nodes,
            max_nodes: plan.max_nodes,
            kind: format!("{:?}", plan.kind),
            knobs: settings,
        };
        let path = dir.join("plan.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let stored: StoredPlan =
                    serde_json::from_slice(&bytes).map_err(|source| RunStoreError::BadPlan {
                        path: path.clone(),
                        source,
                    })?;
                if stored != want {
                    return Err(RunStoreError::OtherPlan {
                        dir: dir.to_path_buf(),
                        stored: serde_json::to_string(&stored).unwrap_or_default(),
                        wanted: serde_json::to_string(&want).unwrap_or_default(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let json = serde_json::to_vec_pretty(&want).unwrap_or_default();
                write_whole(&path, &json).map_err(io(&path))?;
            }
            Err(e) => return Err(io(&path)(e)),
        }
        Ok(RunStore {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, seed: u64) -> PathBuf {
        self.dir.join(format!("seed-{seed}.json"))
    }

    /// Seed `seed`'s run, if kept: `Ok(None)` if it was not, an error if its file does not
    /// parse or holds another seed (the caller may run the seed again, which replaces the file).
    pub fn known(&self, seed: u64) -> Result<Option<AdversaryRun>, RunStoreError> {
        let path = self.path(seed);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RunStoreError::Io { path, source }),
        };
        match serde_json::from_slice::<AdversaryRun>(&bytes) {
            Ok(r) if r.seed == seed => Ok(Some(r)),
            Ok(r) => Err(RunStoreError::BadRun {
                path,
                reason: format!("holds seed {}", r.seed),
            }),
            Err(e) => Err(RunStoreError::BadRun {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Keeps a run, whole or not at all.
    pub fn keep(&self, run: &AdversaryRun) -> Result<(), RunStoreError> {
        let path = self.path(run.seed);
        let json = serde_json::to_vec(run).unwrap_or_default();
        write_whole(&path, &json).map_err(|source| RunStoreError::Io { path, source })
    }
}

/// The runs a store holds, read without running a seed: for the report of a sweep that grew
/// over several sittings, or of a store whose plan the caller does not know
/// (`babelctl simulate --adversary --kept DIR`).
#[derive(Debug, Default)]
pub struct KeptRuns {
    /// `plan.json` as stored, if it parses.
    pub plan: Option<serde_json::Value>,
    /// The runs, in seed order.
    pub runs: Vec<AdversaryRun>,
    /// Files named `seed-N.json` that could not be read as seed N's run (torn, too large, or
    /// another seed's), which the report leaves out.
    pub unreadable: Vec<RunStoreError>,
}

/// The largest run file read back: a run is about 1 kB, so anything near this is not one.
const MAX_RUN_FILE: u64 = 1 << 20;

impl KeptRuns {
    /// Reads every `seed-N.json` in `dir` (whatever its plan; other files are ignored).
    pub fn read(dir: &Path) -> Result<KeptRuns, RunStoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RunStoreError::Io { path, source }
        };
        let mut kept = KeptRuns {
            plan: std::fs::read(dir.join("plan.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok()),
            ..KeptRuns::default()
        };
        let mut seeds: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let seed = name
                .to_str()
                .and_then(|n| n.strip_prefix("seed-"))
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            seeds.extend(seed);
        }
        seeds.sort_unstable();
        let store = RunStore {
            dir: dir.to_path_buf(),
        };
        for seed in seeds {
            let path = store.path(seed);
            match std::fs::metadata(&path) {
                Ok(m) if m.len() > MAX_RUN_FILE => kept.unreadable.push(RunStoreError::BadRun {
                    path,
                    reason: format!("{} octets, more than a run", m.len()),
                }),
                Ok(_) => match store.known(seed) {
                    Ok(Some(r)) => kept.runs.push(r),
                    Ok(None) => {}
                    Err(e) => kept.unreadable.push(e),
                },
                Err(source) => kept.unreadable.push(RunStoreError::Io { path, source }),
            }
        }
        Ok(kept)
    }

    /// The report of all the runs.
    pub fn report(&self) -> SweepReport {
        let mut report = SweepReport::default();
        for r in &self.runs {
            report.add(r);
        }
        report
    }

    /// The seeds held, as ranges: `1-141, 501-596`.
    pub fn seed_ranges(&self) -> String {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for r in &self.runs {
            match ranges.last_mut() {
                Some((_, last)) if last.checked_add(1) == Some(r.seed) => *last = r.seed,
                _ => ranges.push((r.seed, r.seed)),
            }
        }
        ranges
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What [`RunStore::sweep`] tells as it goes.
#[derive(Debug)]
pub enum SweepProgress<'a> {
    /// A seed ran and its run was kept.
    Kept(&'a AdversaryRun),
    /// A seed's file could not be read: the seed runs again, and its file is replaced.
    Unreadable(&'a RunStoreError),
}

impl RunStore {
    /// [`sweep_with`] resuming from this store: the seeds kept are taken, the others run and
    /// are kept as each ends. The first failure to keep a run is returned after the sweep (the
    /// report is then still whole, but that run will run again next time).
    pub fn sweep(
        &self,
        plan: &SweepPlan,
        tweak: &(dyn Fn(&mut AdversaryConfig) + Sync),
        progress: &(dyn Fn(SweepProgress<'_>) + Sync),
    ) -> Result<(SweepReport, Vec<AdversaryRun>), RunStoreError> {
        let failed = std::sync::Mutex::new(None);
        let out = sweep_with(
            plan,
            tweak,
            &|seed| {
                self.known(seed).unwrap_or_else(|e| {
                    progress(SweepProgress::Unreadable(&e));
                    None
                })
            },
            &|r| match self.keep(r) {
                Ok(()) => progress(SweepProgress::Kept(r)),
                Err(e) => {
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(e);
                    }
                }
            },
        );
        match failed.into_inner().ok().flatten() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// Writes `bytes` beside `path`, syncs, and renames it into place.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use babel_core::InterfaceKind;

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!("run-store-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn plan(max_nodes: usize) -> SweepPlan {
        SweepPlan {
            first_seed: 1,
            seeds: 10,
            min_nodes: 50,
            max_nodes,
            kind: InterfaceKind::Wired,
            threads: 2,
        }
    }

    fn run(seed: u64) -> AdversaryRun {
        AdversaryRun {
            seed,
            nodes: 77,
            links: 200,
            adversaries: [(3, crate::Role::Liar)].into(),
            liars: vec![crate::LiarOutcome {
                node: 3,
                role: crate::Role::Liar,
                exposed: 2,
                neighbours: vec![5, 9],
                cycles: vec![Some(2), None],
                paper_cycles: vec![None, Some(4)],
                late_samples: vec![0, 3],
                observed_cycles: vec![9, 3],
            }],
            honest_evicted: 1,
            paper_honest_evicted: 5,
            other_adversaries_evicted: 0,
            traffic_first: crate::Traffic {
                samples: 10,
                delivered: 9,
                through_liar: 4,
                through_liar_last_resort: 0,
                through_adversary: 5,
            },
            traffic_last: crate::Traffic::default(),
            counters: verify::ProbeCounters {
                sessions: 12,
                ..Default::default()
            },
            probe_bytes_per_session_second: 0.5,
        }
    }

    #[test]
    fn a_kept_run_is_known_again_and_nothing_else_is() {
        let d = TempDir::new("keep");
        let store = RunStore::open(&d.0, &plan(200), BTreeMap::new()).unwrap();
        assert!(store.known(7).unwrap().is_none());
        store.keep(&run(7)).unwrap();
        assert_eq!(store.known(7).unwrap(), Some(run(7)));
        assert!(store.known(8).unwrap().is_none());
        // Written whole, then renamed: no temporary file is left.
        let names: Vec<String> = std::fs::read_dir(&d.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // A reopened store (a resumed sweep) finds it.
        let again = RunStore::open(&d.0, &plan(200), BTreeMap::new()).unwrap();
        assert_eq!(again.known(7).unwrap(), Some(run(7)));
    }

    #[test]
    fn a_store_of_another_plan_is_refused() {
        let d = TempDir::new("plan");
        let knobs: BTreeMap<String, String> = [("ADV_WINDOW".to_owned(), "25".to_owned())].into();
        RunStore::open(&d.0, &plan(200), knobs.clone()).unwrap();
        assert!(RunStore::open(&d.0, &plan(200), knobs.clone()).is_ok());
        assert!(matches!(
            RunStore::open(&d.0, &plan(100), knobs),
            Err(RunStoreError::OtherPlan { .. })
        ));
        assert!(matches!(
            RunStore::open(&d.0, &plan(200), BTreeMap::new()),
            Err(RunStoreError::OtherPlan { .. })
        ));
        std::fs::write(d.0.join("plan.json"), b"{").unwrap();
        assert!(matches!(
            RunStore::open(&d.0, &plan(200), BTreeMap::new()),
            Err(RunStoreError::BadPlan { .. })
        ));
    }

    #[test]
    fn kept_runs_are_read_in_seed_order_without_their_plan() {
        let d = TempDir::new("kept");
        let store = RunStore::open(&d.0, &plan(200), BTreeMap::new()).unwrap();
        for seed in [12, 3, 4, 5, 10] {
            store.keep(&run(seed)).unwrap();
        }
        // A torn file is reported, not counted; other files are ignored.
        std::fs::write(d.0.join("seed-11.json"), b"{\"seed\":").unwrap();
        std::fs::write(d.0.join("notes.txt"), b"x").unwrap();
        std::fs::write(d.0.join("seed-x.json"), b"{}").unwrap();
        // A file far larger than a run is not read.
        std::fs::write(d.0.join("seed-20.json"), vec![b' '; 2 << 20]).unwrap();
        let kept = KeptRuns::read(&d.0).unwrap();
        let seeds: Vec<u64> = kept.runs.iter().map(|r| r.seed).collect();
        assert_eq!(seeds, [3, 4, 5, 10, 12]);
        assert_eq!(kept.seed_ranges(), "3-5, 10, 12");
        assert_eq!(kept.unreadable.len(), 2, "{:?}", kept.unreadable);
        assert!(kept.plan.is_some());
        let report = kept.report();
        assert_eq!(report.runs, 5);
        assert_eq!(report.honest_evicted, (5, 25));
        // The same report as a sweep's over those runs.
        let mut by_hand = SweepReport::default();
        for seed in [3, 4, 5, 10, 12] {
            by_hand.add(&run(seed));
        }
        assert_eq!(report, by_hand);
    }

    #[test]
    fn a_torn_or_misplaced_run_is_an_error_not_a_run() {
        let d = TempDir::new("torn");
        let store = RunStore::open(&d.0, &plan(200), BTreeMap::new()).unwrap();
        let whole = serde_json::to_vec(&run(4)).unwrap();
        std::fs::write(
            d.0.join("seed-4.json"),
            whole.get(..whole.len() / 2).unwrap(),
        )
        .unwrap();
        assert!(matches!(store.known(4), Err(RunStoreError::BadRun { .. })));
        std::fs::write(d.0.join("seed-5.json"), &whole).unwrap();
        assert!(matches!(store.known(5), Err(RunStoreError::BadRun { .. })));
        // Running the seed again replaces the torn file.
        store.keep(&run(4)).unwrap();
        assert_eq!(store.known(4).unwrap(), Some(run(4)));
    }
}
