/** Typed request/reply between the coordinator and agents, with errors that survive the trip. */
import type { NatsConnection, Msg } from '@nats-io/nats-core';
import { errorFromJson, errorToJson, UnavailableError, DeadlineExceededError, InvalidArgumentError, PermissionDeniedError } from '../errors.js';
import { SUBJECTS } from '../protocol/subjects.js';
import type { AgentCommands, AgentOp, CommandReply, CommandRequest } from '../protocol/types.js';
import { decodeJson, encodeJson } from './json.js';

/** Asks one agent to do something. `from`: the asking agent's host, for agent-to-agent requests; omitted for the coordinator. */
export async function sendCommand<Op extends AgentOp>(
  nc: NatsConnection,
  host: string,
  op: Op,
  args: AgentCommands[Op]['args'],
  timeoutMs = 15_000,
  from?: string,
): Promise<AgentCommands[Op]['result']> {
  const req: CommandRequest<Op> = { op, args };
  let msg: Msg;
  try {
    const subject = from ? SUBJECTS.peerCommand(host, from) : SUBJECTS.agentCommand(host);
    msg = await nc.request(subject, encodeJson(req), { timeout: timeoutMs });
  } catch (err) {
    const text = String((err as Error).message ?? err);
    if (/timeout/i.test(text)) {
      throw new DeadlineExceededError(`host '${host}' did not answer '${op}' within ${timeoutMs} ms`, { cause: err });
    }
    throw new UnavailableError(`host '${host}' is unreachable for '${op}': ${text}`, { cause: err });
  }
  const reply = decodeJson<CommandReply<AgentCommands[Op]['result']>>(msg.data);
  if (!reply.ok) throw errorFromJson(reply.error);
  return reply.result;
}

/** Who asked: the coordinator (`from` null) or another agent, by the host name in the subject it was allowed to use. */
export interface CommandContext {
  from: string | null;
}

export type CommandHandler = {
  [Op in AgentOp]: (args: AgentCommands[Op]['args'], ctx: CommandContext) => Promise<AgentCommands[Op]['result']>;
};

/** What other agents may ask of an agent; everything else is for the coordinator only. */
export const PEER_OPS: readonly AgentOp[] = ['clone.backup'];

/** Serves an agent's commands (the coordinator's and, for PEER_OPS, other agents'); handler errors travel back as typed errors. */
export function serveCommands(nc: NatsConnection, host: string, handler: CommandHandler, onError: (err: unknown, op: string) => void): () => void {
  const serve = (subject: string) =>
    nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return onError(err, 'subscription');
      void (async () => {
        let op = 'unknown';
        try {
          const req = decodeJson<CommandRequest>(msg.data);
          op = req.op;
          const from = msg.subject === SUBJECTS.agentCommand(host) ? null : (msg.subject.split('.').pop() ?? '');
          if (from !== null && !PEER_OPS.includes(req.op)) throw new PermissionDeniedError(`host '${from}' may not ask for '${req.op}'`);
          const fn = handler[req.op] as ((a: unknown, ctx: CommandContext) => Promise<unknown>) | undefined;
          if (!fn) throw new InvalidArgumentError(`unknown command '${req.op}'`);
          const result = await fn(req.args, { from });
          msg.respond(encodeJson({ ok: true, result }));
        } catch (e) {
          onError(e, op);
          msg.respond(encodeJson({ ok: false, error: errorToJson(e) }));
        }
      })();
    },
  });
  const subs = [serve(SUBJECTS.agentCommand(host)), serve(SUBJECTS.peerCommandsOf(host))];
  return () => subs.forEach((s) => s.unsubscribe());
}
