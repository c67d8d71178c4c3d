//! Streams a reply: `cargo run -p cabildo-models --example generate -- MODEL.gguf [--tokenizer tokenizer.json] [--max N] PROMPT`.
use std::io::Write;
use std::path::Path;

use cabildo_core::{ChatMessage, GenerationRequest, Generator, Role};
use cabildo_models::LocalGenerator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .ok_or("usage: generate MODEL.gguf [--tokenizer T] [--max N] PROMPT")?;
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let tokenizer = opt("--tokenizer");
    let max: usize = opt("--max").and_then(|m| m.parse().ok()).unwrap_or(64);
    let prompt = args.last().ok_or("no prompt")?;
    let g = LocalGenerator::from_gguf(Path::new(model), tokenizer.as_deref().map(Path::new))?;
    let req = GenerationRequest::greedy(vec![ChatMessage::new(Role::User, prompt.clone())], max);
    let out = g.generate(&req, &mut |t| {
        print!("{t}");
        let _ = std::io::stdout().flush();
        true
    })?;
    println!();
    eprintln!(
        "{}: prompt {} tokens in {:.2} s ({:.1} tok/s), {} tokens in {:.2} s ({:.1} tok/s), {:?}",
        g.name(),
        out.prompt_tokens,
        out.prompt_seconds,
        out.prompt_tokens as f64 / out.prompt_seconds.max(1e-9),
        out.completion_tokens,
        out.decode_seconds,
        out.completion_tokens.saturating_sub(1) as f64 / out.decode_seconds.max(1e-9),
        out.finish
    );
    Ok(())
}
