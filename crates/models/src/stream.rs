//! Generation on its own thread, with text delivered through a channel: how the async server
//! will consume a synchronous generator. Dropping the receiver cancels the generation at the
//! next token (a client that went away stops costing GPU/CPU time).

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use cabildo_core::{Generation, GenerationRequest, Generator, ModelError};

/// What a generation stream carries.
#[derive(Debug)]
pub enum StreamEvent {
    /// New text.
    Text(String),
    /// The end: the whole generation (text, token counts, timings) or the error.
    Done(Result<Generation, ModelError>),
}

/// Starts `request` on a new thread and returns the receiving end of its events.
pub fn generate_stream(
    generator: Arc<dyn Generator>,
    request: GenerationRequest,
) -> Receiver<StreamEvent> {
    // Bounded: a slow consumer slows generation down instead of buffering without limit.
    let (tx, rx) = sync_channel(64);
    std::thread::spawn(move || {
        let result = generator.generate(&request, &mut |text| {
            tx.send(StreamEvent::Text(text.to_string())).is_ok()
        });
        let _ = tx.send(StreamEvent::Done(result));
    });
    rx
}
