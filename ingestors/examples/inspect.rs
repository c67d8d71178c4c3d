//! Prints what the parsers make of files: `cargo run -p cabildo-ingestors --example inspect -- FILE... [--passages N]`.
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show: usize = args
        .iter()
        .position(|a| a == "--passages")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let defaults = cabildo_ingestors::IngestDefaults::default();
    for f in args
        .iter()
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
    {
        let path = Path::new(f);
        let bytes = std::fs::read(path).expect("read");
        match cabildo_ingestors::parse_file(path, &bytes, &defaults) {
            Ok(p) => {
                println!(
                    "{f}: {} | {} | {} | {} | {} passages",
                    p.norm.id,
                    p.norm.title,
                    p.norm.kind,
                    p.norm.jurisdiction,
                    p.passages.len()
                );
                for x in p.passages.iter().take(show) {
                    println!(
                        "  [{}] {} | p{:?} | {:?}\n    {}",
                        x.id,
                        x.label,
                        x.page,
                        x.url,
                        x.text
                            .chars()
                            .take(300)
                            .collect::<String>()
                            .replace('\n', " / ")
                    );
                }
            }
            Err(e) => println!("{f}: ERROR {e}"),
        }
    }
}
