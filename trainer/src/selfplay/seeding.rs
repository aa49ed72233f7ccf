//! Seeding the buffers before the first step: the identity program, the configured seed
//! programs, then programs the base model proposes from them (no update).

use super::*;

impl<J: Judge> SelfPlay<J> {
    /// Seeding: the configured seed programs first, then proposals of the base model until
    /// the deduction/abduction seed pool and the induction buffer hold `batch_size ×
    /// seed_batch_factor` programs (or `max_seed_rounds` pass); then the buffers start from
    /// them.
    pub(super) fn seed_buffers(&mut self) -> Result<()> {
        let target = self.config.seed_buffer_size();
        let types = self.config.tasks.types.clone();
        let triplet_types: Vec<TaskType> = types
            .iter()
            .copied()
            .filter(|t| *t != TaskType::Induction)
            .collect();
        let induction = types.contains(&TaskType::Induction);
        let mut buffers = self.buffers.clone();
        let started = Instant::now();
        self.add_seed_programs(&mut buffers)?;
        eprintln!(
            "seeding the buffers to {target} programs per type (at most {} rounds)",
            self.config.tasks.max_seed_rounds
        );
        for round in 0..self.config.tasks.max_seed_rounds {
            let mut want: Vec<TaskType> = Vec::new();
            if buffers.seed.len() < target {
                want.extend(&triplet_types);
            }
            if induction && buffers.induction.len() < target {
                want.push(TaskType::Induction);
            }
            if want.is_empty() || (triplet_types.is_empty() && !induction) {
                break;
            }
            let mut times = Times::default();
            let proposals = self.propose(
                &buffers,
                &want,
                self.config.tasks.batch_size,
                0,
                1000 + round as u64,
                &mut times,
            )?;
            let mut valid = 0;
            for p in &proposals {
                self.rollout_log.event(&serde_json::json!({
                    "seed_round": round + 1,
                    "group": Group::new(p.task, Role::Propose).name(),
                    "valid": p.solve.is_some(),
                    "invalid": p.invalid,
                    "format_ok": p.format_ok,
                    "response": p.text,
                    "task": p.solve,
                }))?;
            }
            for p in proposals {
                match p.solve {
                    Some(SolveTask::Induction(t)) => {
                        valid += 1;
                        buffers.push_induction(t, 0, self.config.tasks.dedup, usize::MAX);
                    }
                    Some(SolveTask::Deduction(t) | SolveTask::Abduction(t)) => {
                        valid += 1;
                        buffers.add_seed(t);
                    }
                    None => {}
                }
            }
            let record = serde_json::json!({
                "event": "seed",
                "round": round + 1,
                "valid": valid,
                "seed_programs": buffers.seed.len(),
                "induction_tasks": buffers.induction.len(),
                "generate_s": times.generate_s,
                "sandbox_s": times.sandbox_s,
                "tokens": times.generated_tokens,
            });
            self.log.event(&record)?;
            eprintln!(
                "seed round {}: {valid} valid proposals; seed pool {}/{target}, induction {}/{target} ({:.0} s)",
                round + 1,
                buffers.seed.len(),
                buffers.induction.len(),
                started.elapsed().as_secs_f64()
            );
            self.check_stop()?;
        }
        if buffers.seed.len() < target {
            tracing::warn!(
                have = buffers.seed.len(),
                target,
                "seeding ended before the target; training starts with what the buffers hold"
            );
        }
        buffers.finish_seeding(target);
        self.buffers = buffers;
        Ok(())
    }

    /// Runs the configured seed programs (`tasks.seed_programs`) in the sandbox as a
    /// proposal's program is run, and puts the valid ones, with the outputs the sandbox
    /// computed, in the seed pool. A program that does not run is left out and named.
    pub(super) fn add_seed_programs(&mut self, buffers: &mut Buffers) -> Result<()> {
        let spec = self.config.tasks.seed_programs.clone();
        let programs = azr::buffer::seed_programs(&self.config.tasks, self.config.seed)?;
        if programs.is_empty() {
            return Ok(());
        }
        let items: Vec<ValidateTask> = programs
            .iter()
            .map(|t| ValidateTask {
                program: t.program.clone(),
                imports: t.imports.clone(),
                input: t.input.clone(),
                check_banned: true,
            })
            .collect();
        let mut times = Times::default();
        let results = self.validate(&items, &mut times);
        let (mut added, mut refused) = (0, 0);
        for (i, (mut t, v)) in programs.into_iter().zip(results).enumerate() {
            match (v.ok, v.output) {
                (true, Some(output)) => {
                    t.output = output;
                    added += usize::from(buffers.add_seed(t));
                }
                _ => {
                    refused += 1;
                    tracing::warn!(
                        program = i + 1,
                        error = v.error.as_deref().unwrap_or("no output"),
                        "a seed program does not run; left out"
                    );
                }
            }
        }
        self.log.event(&serde_json::json!({
            "event": "seed_programs",
            "source": spec,
            "added": added,
            "refused": refused,
            "sandbox_s": times.sandbox_s,
        }))?;
        eprintln!("seed programs ({spec}): {added} added to the seed pool, {refused} refused");
        Ok(())
    }
}
