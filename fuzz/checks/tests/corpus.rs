//! Replays every file of `fuzz/corpus/<target>/` through its target's check, so CI checks the
//! fuzzing corpus on stable Rust without running the fuzzer.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_check() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    for (target, check) in whisk_fuzz_checks::TARGETS {
        let dir = corpus.join(target);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a corpus entry").path())
            .collect();
        assert!(!files.is_empty(), "no corpus for {target}");
        for file in &files {
            let data = std::fs::read(file).expect("a corpus file");
            let replay = std::panic::catch_unwind(|| check(&data));
            assert!(
                replay.is_ok(),
                "{target}: {} fails its check",
                file.display()
            );
        }
        println!("{target}: {} files", files.len());
    }
}
