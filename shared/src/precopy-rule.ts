/**
 * The pre-copy stop rule, shared by the agent that applies it and the
 * coordinator that predicts with it. After each round the source counts the
 * pages dirtied since they were sent and stops pre-copying when:
 *
 * - `converged`: fewer dirty pages than the threshold remain;
 * - `max-rounds`: the round limit (default 30) is reached;
 * - `stalled`: three rounds in a row each shrank the dirty set by less than 10%.
 *
 * Then it switches over (suspends the source and sends the rest).
 */
/** Rounds stop early when this many rounds in a row each shrink the dirty set by less than 10%. */
export const STALL_ROUNDS = 3;
export const STALL_RATIO = 0.9;

export function stopReason(history: readonly number[], dirtyNow: number, threshold: number, maxRounds: number): string {
  if (dirtyNow < threshold) return 'converged';
  if (history.length >= maxRounds) return 'max-rounds';
  const seq = [...history.slice(1), dirtyNow];
  if (seq.length > STALL_ROUNDS) {
    let stalled = true;
    for (let k = seq.length - STALL_ROUNDS; k < seq.length; k++) {
      if (seq[k]! < STALL_RATIO * seq[k - 1]!) stalled = false;
    }
    if (stalled) return 'stalled';
  }
  return '';
}

