//! A step's rollouts: proposals, their solve-rate estimates and learnability rewards, then the
//! solver's answers to tasks drawn from the buffers, each checked in the sandbox and rewarded.

use super::*;

impl<J: Judge> SelfPlay<J> {
    /// A step's rollouts: proposals, their validation and solve-rate estimates, then the
    /// solver's answers, each rewarded. Works on a copy of the buffers (returned with the
    /// valid proposals added), so an interrupted or measured phase leaves them as they were.
    pub(super) fn rollout_phase(&mut self, step: u64, times: &mut Times) -> Result<Phase> {
        let c = self.config.clone();
        let types = c.tasks.types.clone();
        // The step works on a copy: an interrupted step leaves the buffers as they were.
        let mut buffers = self.buffers.clone();
        let mut tallies: BTreeMap<Group, GroupTally> = BTreeMap::new();
        let mut rollouts: Vec<Rollout> = Vec::new();

        // 1–2. Propose and validate.
        let proposals = self.propose(&buffers, &types, c.propose_batch_size(), step, 0, times)?;

        // 3. Estimate the solve rate of every valid proposal; reward the proposals.
        let accuracies = self.estimate(&proposals, step, times)?;
        self.reward_proposals(
            &proposals,
            &accuracies,
            step,
            &mut buffers,
            &mut tallies,
            &mut rollouts,
        )?;

        // 4. Solve tasks drawn from the buffers.
        self.solve(step, &buffers, &mut tallies, &mut rollouts, times)?;
        self.check_stop()?;
        Ok(Phase {
            buffers,
            tallies,
            rollouts,
        })
    }
}
