//! Generation for the loop: prompts encoded with the run's chat template and opening, and
//! batches of them sampled from the rollout copy, with the timings a step records.

use super::*;

impl<J: Judge> SelfPlay<J> {
    /// Makes what the first generation of either path would otherwise make inside its timing:
    /// the rollout copy of the configured precision and the packed copies of the f32
    /// weights (one short prompt through each path).
    pub fn prepare_generation(&mut self) -> Result<()> {
        let precision = self.config.rollout.precision;
        if precision != Precision::F32 {
            self.model.refresh_rollout_copy(precision);
        }
        // More rows than the few-row kernels take, so that the f32 weights get packed.
        let prompt = self
            .tokenizer
            .encode(&"def f(x):\n    return x + 1\n".repeat(8))?;
        let params = SamplingParams {
            max_new_tokens: 2,
            seed: Some(0),
            precision,
            ..SamplingParams::default()
        };
        for params in [params.clone(), params.plain_path()] {
            generate_with_stats(
                &self.model,
                &self.tokenizer,
                std::slice::from_ref(&prompt),
                &params,
            )?;
        }
        Ok(())
    }

    /// Runs the generation phase of the next step (proposals, their validation and
    /// solve-rate answers, the solver's answers: everything but the update) once, on the
    /// configured path or, with `reference`, on the plain path (see `plain_path`), and says
    /// what it took. Seeds the buffers first if they are empty; leaves the buffers, the
    /// weights and the step count as they were, so every call draws the same tasks from the
    /// same seeds. With `gap`, also the mean |log p_f32 − log p_sampled| of the tokens
    /// generated (one untimed f32 teacher-forced pass over them).
    pub fn measure_generation(&mut self, reference: bool, gap: bool) -> Result<GenerationFigures> {
        if self.buffers.seeding() {
            self.seed_buffers()?;
        }
        let sandbox_before = self.sandbox.stats().clone();
        let mut times = Times::default();
        self.plain_path = reference;
        let phase = self.rollout_phase(self.step + 1, &mut times);
        self.plain_path = false;
        let Phase { rollouts, .. } = phase?;
        let sandbox = metrics::SandboxDelta::between(&sandbox_before, self.sandbox.stats());
        // Each response's tokens, then a separator no token's bytes can be.
        let digest = fnv1a_hex(rollouts.iter().flat_map(|r| {
            r.response
                .iter()
                .flat_map(|t| t.to_le_bytes())
                .chain([0xff; 8])
        }));
        let logprob_gap = if gap {
            let mut g = LogprobGap::default();
            let trainable: Vec<&Rollout> =
                rollouts.iter().filter(|r| !r.response.is_empty()).collect();
            for (r, lps) in trainable.iter().zip(self.f32_logprobs(&trainable)?) {
                g.add(&lps, &r.sampled_logprobs);
            }
            g.mean()
        } else {
            None
        };
        Ok(GenerationFigures {
            generate_s: times.generate_s,
            prefill_s: times.prefill_s,
            decode_s: times.decode_s,
            prompt_tokens: times.prompt_tokens,
            generated_tokens: times.generated_tokens,
            rollouts: rollouts.len(),
            sandbox_s: sandbox.seconds,
            tokens_digest: digest,
            logprob_gap,
        })
    }

    /// What opens the assistant's turn: nothing for a brief prompt, which asks for a bare
    /// reply; `rollout.assistant_prefix` (`<think>`) for the reference's, which opens with
    /// its reasoning.
    pub(super) fn opening(&self, brief: bool) -> &str {
        if brief {
            ""
        } else {
            &self.config.rollout.assistant_prefix
        }
    }

    /// A solver task's prompt in the configured style.
    pub(super) fn encode_solver(&self, task: &SolveTask) -> Result<Option<Encoded>> {
        let style = self.config.rollout.prompt_style;
        let opening = self.opening(style == PromptStyle::Brief);
        self.encode_opening(&solve_prompt_in(task, style), opening)
    }

    /// `prompt` as token ids, the assistant's turn opened with `opening` (with the chat
    /// template); `None` when it is longer than `max_prompt_tokens` or leaves the model no
    /// room to answer.
    pub(super) fn encode_opening(&self, prompt: &Prompt, opening: &str) -> Result<Option<Encoded>> {
        let text = if self.config.rollout.chat_template && self.tokenizer.chat_template.is_some() {
            self.tokenizer.apply_chat_template(&prompt.pairs())? + opening
        } else {
            prompt.plain_text()
        };
        let ids = self.tokenizer.encode(&text)?;
        let room = (self.model.config.max_position_embeddings as usize).saturating_sub(ids.len());
        if ids.len() > self.config.rollout.max_prompt_tokens || room == 0 {
            return Ok(None);
        }
        Ok(Some(Encoded { ids }))
    }

    /// Generates one response per prompt, `generation_batch` sequences at a time (a
    /// finished one's row given to the next prompt).
    pub(super) fn generate(
        &self,
        prompts: &[Vec<i64>],
        seed: u64,
        times: &mut Times,
    ) -> Result<Vec<Generated>> {
        let t = Instant::now();
        let r = &self.config.rollout;
        let positions = self.model.config.max_position_embeddings as usize;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let params = SamplingParams {
            max_new_tokens: r.max_response_tokens.min(positions.saturating_sub(longest)),
            temperature: r.temperature,
            top_p: r.top_p,
            // Nothing after the answer is ever read; stopping there saves the tokens an
            // instruct model spends on closing remarks.
            stop_strings: vec!["</answer>".into()],
            seed: Some(seed),
            precision: r.precision,
            share_prefix: r.share_prefix,
            max_batch: r.generation_batch.max(1),
            cancel: Some(self.stop.clone()),
            ..SamplingParams::default()
        };
        let params = if self.plain_path {
            params.plain_path()
        } else {
            params
        };
        let (completions, stats) =
            match generate_with_stats(&self.model, &self.tokenizer, prompts, &params) {
                Err(crate::Error::Cancelled) => return Err(Interrupted.into()),
                r => r?,
            };
        times.prefill_s += stats.prefill_s;
        times.decode_s += stats.decode_s;
        times.prompt_tokens += stats.prompt_tokens;
        let mut out = Vec::with_capacity(prompts.len());
        for c in completions {
            times.generated_tokens += c.tokens.len();
            let text = self.tokenizer.decode(&c.tokens, true)?;
            out.push(Generated {
                tokens: c.tokens,
                logprobs: c.logprobs,
                text,
            });
        }
        self.check_stop()?;
        times.generate_s += t.elapsed().as_secs_f64();
        Ok(out)
    }
}
