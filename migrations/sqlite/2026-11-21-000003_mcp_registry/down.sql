DROP TABLE mcp_tool_invocations;
DROP TABLE mcp_tools;
DROP TABLE mcp_servers;
