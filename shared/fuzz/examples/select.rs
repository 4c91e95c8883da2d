//! Picks the few inputs worth committing from a long run's corpus: greedily, the input that adds
//! the most coverage not yet covered, until `max` inputs or nothing more to add.
//!
//! `cargo fuzz cmin` keeps every input with a feature no other has, which for a JSON-heavy
//! target is a thousand small files; this keeps a few dozen that cover most of it. It reads the
//! control file of a libFuzzer merge (`-merge=1 -merge_control_file=F`), whose `FT <i> <features…>`
//! lines list each input's features:
//!
//! ```sh
//! target/…/release/token -merge=1 -use_counters=0 -merge_control_file=/tmp/ctl /tmp/empty <corpus>
//! cargo run --manifest-path shared/fuzz/Cargo.toml --example select -- /tmp/ctl 48 <out>
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [control, max, out] = args.as_slice() else {
        eprintln!("usage: select <merge control file> <max inputs> <output folder>");
        std::process::exit(2);
    };
    let max: usize = max.parse().expect("max is a number");
    let text = std::fs::read_to_string(control).expect("read the control file");
    let mut lines = text.lines();
    let count: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .expect("file count");
    let _first_corpus = lines.next();
    let files: Vec<&str> = lines.by_ref().take(count).collect();
    let mut features: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
    for line in lines {
        let mut words = line.split_whitespace();
        if words.next() == Some("FT") {
            let index: usize = words.next().and_then(|w| w.parse().ok()).expect("index");
            features.insert(index, words.filter_map(|w| w.parse().ok()).collect());
        }
    }
    let total: BTreeSet<u64> = features.values().flatten().copied().collect();
    let size = |i: usize| std::fs::metadata(files[i]).map_or(u64::MAX, |m| m.len());

    let mut covered = BTreeSet::new();
    let mut chosen = Vec::new();
    while chosen.len() < max {
        // Most new features first; the smaller input on a tie.
        let best = features
            .iter()
            .map(|(i, f)| (*i, f.difference(&covered).count()))
            .filter(|(_, new)| *new > 0)
            .max_by_key(|(i, new)| (*new, std::cmp::Reverse(size(*i))));
        let Some((index, _)) = best else { break };
        covered.extend(features.remove(&index).unwrap_or_default());
        chosen.push(index);
    }
    std::fs::create_dir_all(out).expect("create the output folder");
    for index in &chosen {
        let from = Path::new(files[*index]);
        let name = from.file_name().expect("a file name");
        std::fs::copy(from, Path::new(out).join(name)).expect("copy an input");
    }
    println!(
        "{} inputs cover {} of {} features ({:.1} %)",
        chosen.len(),
        covered.len(),
        total.len(),
        100.0 * covered.len() as f64 / total.len().max(1) as f64
    );
}
