// Workspace-side resources (deployed in the workspace's resource group): the alerts table, the
// KQL function that joins alerts to Sentinel incidents, and Microsoft Sentinel Responder for
// each of xdrsync's principals (read and update incidents and comments).

param workspaceName string
param tableName string

@description('Object ids of the principals xdrsync calls Azure as.')
param principalIds array

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: tableName
  properties: {
    schema: {
      name: tableName
      columns: [
        { name: 'TimeGenerated', type: 'datetime' }
        { name: 'SystemAlertId', type: 'string' }
        { name: 'AlertName', type: 'string' }
        { name: 'DisplayName', type: 'string' }
        { name: 'Description', type: 'string' }
        { name: 'AlertSeverity', type: 'string' }
        { name: 'ProductName', type: 'string' }
        { name: 'ProductComponentName', type: 'string' }
        { name: 'ProviderName', type: 'string' }
        { name: 'VendorName', type: 'string' }
        { name: 'VendorOriginalId', type: 'string' }
        { name: 'Status', type: 'string' }
        { name: 'StartTime', type: 'datetime' }
        { name: 'EndTime', type: 'datetime' }
        { name: 'ProcessingEndTime', type: 'datetime' }
        { name: 'AlertLink', type: 'string' }
        { name: 'RemediationSteps', type: 'string' }
        { name: 'Tactics', type: 'string' }
        { name: 'Techniques', type: 'string' }
        { name: 'CompromisedEntity', type: 'string' }
        { name: 'Entities', type: 'string' }
        { name: 'EntitiesOmitted', type: 'int' }
        { name: 'ExtendedProperties', type: 'string' }
        { name: 'IsIncident', type: 'boolean' }
        { name: 'DefenderTenantId', type: 'string' }
        { name: 'DefenderIncidentId', type: 'string' }
        { name: 'SentinelIncidentName', type: 'string' }
        { name: 'AlertLastUpdateDateTime', type: 'datetime' }
        { name: 'RowKey', type: 'string' }
        { name: 'RowDigest', type: 'string' }
        { name: 'EntityHostName', type: 'string' }
        { name: 'EntityHostDnsDomain', type: 'string' }
        { name: 'EntityHostAzureId', type: 'string' }
        { name: 'EntityAccountName', type: 'string' }
        { name: 'EntityAccountUPNSuffix', type: 'string' }
        { name: 'EntityAccountAadUserId', type: 'string' }
        { name: 'EntityAccount2Name', type: 'string' }
        { name: 'EntityAccount2UPNSuffix', type: 'string' }
        { name: 'EntityAccount2AadUserId', type: 'string' }
        { name: 'EntityIp', type: 'string' }
        { name: 'EntityIp2', type: 'string' }
        { name: 'EntityFileHashAlgorithm', type: 'string' }
        { name: 'EntityFileHashValue', type: 'string' }
        { name: 'EntityUrl', type: 'string' }
        { name: 'EntityMailbox', type: 'string' }
        { name: 'EntityProcessId', type: 'string' }
        { name: 'EntityProcessCommandLine', type: 'string' }
        { name: 'EntityCloudAppId', type: 'string' }
        { name: 'EntityCloudAppName', type: 'string' }
      ]
    }
  }
}

// XdrsyncIncidentAlerts(): each alert exactly once (its latest row) with its Sentinel incident.
// Logs Ingestion does not deduplicate, so the table can hold copies of a row (a retry after a lost
// answer). `summarize … by SystemAlertId` returns one row per alert however many copies there are;
// the latest is the one with the latest TimeGenerated (send time). Rows sharing a TimeGenerated are
// first narrowed to Defender's newest version (AlertLastUpdateDateTime), so Kusto's free choice
// among tied rows (arg_max returns "a row") only ever falls between identical copies: the
// copies of one request, which carry the same TimeGenerated and content (RowDigest).
resource joinFunction 'Microsoft.OperationalInsights/workspaces/savedSearches@2020-08-01' = {
  parent: workspace
  name: 'xdrsync-incident-alerts'
  properties: {
    category: 'xdrsync'
    displayName: 'Defender XDR alerts joined to their Sentinel incidents'
    functionAlias: 'XdrsyncIncidentAlerts'
    query: '${tableName} | summarize arg_max(AlertLastUpdateDateTime, *) by SystemAlertId, TimeGenerated | summarize arg_max(TimeGenerated, *) by SystemAlertId | join kind=leftouter (SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName | project IncidentName, IncidentNumber, Title, Status, Severity, Owner) on $left.SentinelIncidentName == $right.IncidentName'
  }
}

var sentinelResponderRoleId = '3e150937-b8fe-4cfb-8069-0eaf05ecd056' // Microsoft Sentinel Responder

// Microsoft Sentinel Responder on the workspace.
resource responder 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {
  name: guid(workspace.id, principalId, 'sentinel-responder')
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sentinelResponderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]
