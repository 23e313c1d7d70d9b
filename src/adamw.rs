//! AdamW's settings and state; the update is the backend's `adamw_step`.

/// AdamW's settings (the learning rate is `TrainOptions::lr`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

/// makemore.py's learning rate for AdamW.
pub const ADAMW_DEFAULT_LR: f32 = 5e-4;

impl Default for AdamW {
    /// makemore.py: `torch.optim.AdamW(lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)`.
    fn default() -> AdamW {
        AdamW {
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
        }
    }
}

/// AdamW's moment estimates and step count.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Steps taken so far (the next step is `t + 1`).
    pub t: u32,
}

impl AdamState {
    pub fn new(num_weights: usize) -> AdamState {
        let (m, v) = (vec![0.0; num_weights], vec![0.0; num_weights]);
        AdamState { m, v, t: 0 }
    }

    /// The bias corrections `1 - beta1^t` and `1 - beta2^t` of step `t`.
    pub fn bias_corrections(t: u32, adamw: &AdamW) -> (f32, f32) {
        let correction = |beta: f32| (1.0 - (beta as f64).powi(t as i32)) as f32;
        (correction(adamw.beta1), correction(adamw.beta2))
    }
}
