//! Tidy checks over the source tree (STYLE.md §11): no ignored tests, no `should_panic` tests.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_ignored_or_should_panic_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let forbidden = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for marker in forbidden {
            assert!(
                !text.contains(marker),
                "{} contains {marker}: assert current behaviour and add a FIXME instead",
                file.display()
            );
        }
    }
}
