/** Typed request/reply between the coordinator and agents, with errors that survive the trip. */
import type { NatsConnection, Msg } from '@nats-io/nats-core';
import { errorFromJson, errorToJson, UnavailableError, DeadlineExceededError, InvalidArgumentError } from '../errors.js';
import { SUBJECTS } from '../protocol/subjects.js';
import type { AgentCommands, AgentOp, CommandReply, CommandRequest } from '../protocol/types.js';
import { decodeJson, encodeJson } from './json.js';

export async function sendCommand<Op extends AgentOp>(
  nc: NatsConnection,
  host: string,
  op: Op,
  args: AgentCommands[Op]['args'],
  timeoutMs = 15_000,
): Promise<AgentCommands[Op]['result']> {
  const req: CommandRequest<Op> = { op, args };
  let msg: Msg;
  try {
    msg = await nc.request(SUBJECTS.agentCommand(host), encodeJson(req), { timeout: timeoutMs });
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

export type CommandHandler = {
  [Op in AgentOp]: (args: AgentCommands[Op]['args']) => Promise<AgentCommands[Op]['result']>;
};

/** Serves an agent's commands; handler errors travel back as typed errors. */
export function serveCommands(nc: NatsConnection, host: string, handler: CommandHandler, onError: (err: unknown, op: string) => void): () => void {
  const sub = nc.subscribe(SUBJECTS.agentCommand(host), {
    callback: (err, msg) => {
      if (err) return onError(err, 'subscription');
      void (async () => {
        let op = 'unknown';
        try {
          const req = decodeJson<CommandRequest>(msg.data);
          op = req.op;
          const fn = handler[req.op] as ((a: unknown) => Promise<unknown>) | undefined;
          if (!fn) throw new InvalidArgumentError(`unknown command '${req.op}'`);
          const result = await fn(req.args);
          msg.respond(encodeJson({ ok: true, result }));
        } catch (e) {
          onError(e, op);
          msg.respond(encodeJson({ ok: false, error: errorToJson(e) }));
        }
      })();
    },
  });
  return () => sub.unsubscribe();
}
