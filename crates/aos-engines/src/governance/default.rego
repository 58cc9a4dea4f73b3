# AOS default tool-invocation policy (package aos.invoke).
#
# Input: tenant {id, settings {high_requires_approval}}, actor {id, type},
# server {id, name, url, status}, tool {id, name, risk, enabled, requires_approval,
# quarantined, flags, annotations}, arguments, run {run_id, step_index, trace_id},
# purpose ("call", or "list" when the /mcp catalog is built: arguments are then empty),
# agent {id, name, capabilities, manifest_pinned, manifest_version} and capability
# {tool, max_risk, requires_approval} when an agent calls (null otherwise).
#
# Rules, each a set of reasons: `deny` (the call is BLOCKED), `require_approval` (the
# call waits for a human), `flag` (allowed, marked "flagged"), `hide` (left out of the
# caller's catalog at /mcp; the default hides nothing).
package aos.invoke

import rego.v1

deny contains "tool is disabled" if not input.tool.enabled

deny contains "tool definition changed; quarantined until an admin re-approves it" if input.tool.quarantined

require_approval contains "CRITICAL risk tool" if input.tool.risk == "CRITICAL"

require_approval contains "tool is marked requires_approval" if input.tool.requires_approval

require_approval contains "HIGH risk tool" if {
	input.tool.risk == "HIGH"
	input.tenant.settings.high_requires_approval
}

# An agent's capability marked requires_approval (input.capability is the capability of
# the calling agent that admits this tool; absent for callers that are not agents).
require_approval contains sprintf("capability %s of agent %s requires approval", [input.capability.tool, input.agent.name]) if {
	input.capability.requires_approval
}

flag contains sprintf("tool definition flagged: %s", [f]) if some f in input.tool.flags
