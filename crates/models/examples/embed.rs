//! Prints embeddings as JSON lines: `cargo run -p cabildo-models --example embed -- DIR [--query] TEXT...`
//! where DIR holds e5-small-q4.bin (e5) or a BERT safetensors folder.
use std::path::Path;

use cabildo_models::{Embedder, TextEmbedder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(args.first().ok_or("usage: embed DIR [--query] TEXT...")?);
    let query = args.iter().any(|a| a == "--query");
    let texts: Vec<&str> = args[1..]
        .iter()
        .filter(|a| *a != "--query")
        .map(String::as_str)
        .collect();
    let e = if dir.join("e5-small-q4.bin").is_file() {
        TextEmbedder::e5_small(dir)?
    } else {
        TextEmbedder::bert_dir(dir)?
    };
    let vs = if query {
        texts
            .iter()
            .map(|t| e.embed_query(t))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        e.embed_passages(&texts)?
    };
    for v in vs {
        println!("{}", serde_json::to_string(&v)?);
    }
    Ok(())
}
