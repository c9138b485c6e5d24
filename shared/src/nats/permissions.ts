/**
 * NATS users and subject permissions per role, as a nats-server `authorization`
 * block. The coordinator may do everything (it owns the JetStream buckets and
 * streams); an agent may publish only its own heartbeats, its own events and
 * requests to other agents signed with its own name, and may read only its own
 * command subjects, heartbeats (to watch a peer) and its own reply inbox.
 */
import { randomBytes } from 'node:crypto';
import { SUBJECTS } from '../protocol/subjects.js';
import { agentInboxPrefix } from './connect.js';

export interface NatsUser {
  user: string;
  password: string;
  permissions: {
    publish: { allow: string[] } | { deny: string[] };
    subscribe: { allow: string[] } | { deny: string[] };
    allow_responses?: boolean;
  };
}

export const COORDINATOR_NATS_USER = 'coordinator';

export function agentNatsUser(host: string): string {
  return `agent-${host}`;
}

function secret(): string {
  return randomBytes(24).toString('base64url');
}

export function coordinatorUser(password = secret()): NatsUser {
  return { user: COORDINATOR_NATS_USER, password, permissions: { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } } };
}

export function agentUser(host: string, password = secret()): NatsUser {
  return {
    user: agentNatsUser(host),
    password,
    permissions: {
      publish: {
        allow: [SUBJECTS.heartbeat(host), SUBJECTS.agentEventsOf(host), SUBJECTS.peerCommand('*', host)],
      },
      subscribe: {
        allow: [SUBJECTS.agentCommand(host), SUBJECTS.peerCommandsOf(host), SUBJECTS.heartbeatAll, `${agentInboxPrefix(host)}.>`],
      },
      // Replies to the requests it received (commands), and nothing else outside the lists above.
      allow_responses: true,
    },
  };
}

/** The `authorization { users = [...] }` block for nats-server (JSON is valid NATS config syntax). */
export function natsAuthorizationConfig(users: NatsUser[]): string {
  const lines = users.map((u) => `    ${JSON.stringify(u)}`);
  return `# doppel NATS users: made by 'doppel nats-auth'. Include it from nats-server.conf.\nauthorization {\n  users = [\n${lines.join(',\n')}\n  ]\n}\n`;
}
