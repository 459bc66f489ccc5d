/** Cedar policies of the on-behalf-of tests (agents acting for people). */
import { SUB } from '../tasks/helpers.js';

/** Agents: tasks and team/** (the ceiling). People: staff may have agents act for them; finance reads finance; hr only for people. */
export const USER_POLICIES = `
@id("agents-delegate")
permit (principal, action == Tessera::Action::"token.delegate", resource)
when { principal.trust_domain == "tessera.local" };

@id("agents-read-team")
permit (principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"team")
when { principal.trust_domain == "tessera.local" };

@id("staff-have-agents")
permit (principal in Tessera::Group::"staff", action == Tessera::Action::"token.delegate", resource)
when { context.actor like "spiffe://tessera.local/*" };

@id("staff-read-general")
permit (principal in Tessera::Group::"staff", action == Tessera::Action::"secret.read", resource in Tessera::Folder::"team/general");

@id("finance-reads-finance")
permit (principal in Tessera::Group::"finance", action == Tessera::Action::"secret.read", resource in Tessera::Folder::"team/finance")
when { principal.hasTag("department") && principal.getTag("department") == "finance" };

@id("agents-lease-mem")
permit (principal, action == Tessera::Action::"cred.issue", resource in Tessera::Engine::"mem")
when { principal.trust_domain == "tessera.local" };

@id("staff-lease-mem")
permit (principal in Tessera::Group::"staff", action == Tessera::Action::"cred.issue", resource in Tessera::Engine::"mem");

@id("people-read-hr")
permit (principal is Tessera::User, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"hr");

@id("no-summarizer-for-people-finance")
forbid (principal is Tessera::User, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"team/finance")
when { context.actor == "${SUB}" };
`;
