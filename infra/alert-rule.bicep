// The near-real-time analytics rule that turns every row of the alerts table into a Microsoft
// Sentinel alert (name, description, severity, tactics, link and remediation from the row; entities
// from the flattened entity columns; the Defender ids as custom details), without incidents: xdrsync
// relates each alert to its mirror (ARCHITECTURE.md: “Native alerts”). Deployed in the workspace's
// resource group with Log Analytics Reader for xdrsync's identity (the query API finds the alerts).
//
// Documented (azure-rest-api-specs securityinsights, bicep types): kind 'NRT' exists in the preview
// api-versions only (the stable 2025-09-01 lists Fusion, MicrosoftSecurityIncidentCreation and
// Scheduled), hence 2025-07-01-preview; alertDetailsOverride (alertDisplayNameFormat,
// alertDescriptionFormat, alertSeverityColumnName, alertTacticsColumnName, alertDynamicProperties),
// entityMappings, customDetails, eventGroupingSettings, incidentConfiguration.createIncident.
// Documented (Learn, “Map data fields to entities”): at most 10 mappings of 3 identifiers; 500
// entities per alert. Documented (“Customize alert details”): an empty or invalid severity or tactic
// falls back to the rule's own. Assumed: a Defender alert category (e.g. InitialAccess) is accepted as
// a tactic name where it matches one; others fall back to no tactic.

@description('Name of the Sentinel (Log Analytics) workspace.')
param workspaceName string

@description('The alerts table (XdrsyncAlerts_CL).')
param tableName string

@description('Object ids of the principals xdrsync calls Azure as (each gets Log Analytics Reader).')
param principalIds array

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

resource rule 'Microsoft.SecurityInsights/alertRules@2025-07-01-preview' = {
  scope: workspace
  name: guid(workspace.id, 'xdrsync-defender-alerts')
  kind: 'NRT'
  properties: {
    displayName: 'xdrsync: Defender XDR alerts'
    description: 'One alert per Defender XDR alert row xdrsync writes; xdrsync relates it to the incident mirroring its Defender incident.'
    enabled: true
    severity: 'Medium'
    tactics: []
    techniques: []
    query: '${tableName}'
    suppressionDuration: 'PT5H'
    suppressionEnabled: false
    eventGroupingSettings: { aggregationKind: 'AlertPerResult' }
    alertDetailsOverride: {
      alertDisplayNameFormat: '{{AlertName}}'
      alertDescriptionFormat: '{{Description}}'
      alertSeverityColumnName: 'AlertSeverity'
      alertTacticsColumnName: 'Tactics'
      alertDynamicProperties: [
        { alertProperty: 'AlertLink', value: 'AlertLink' }
        { alertProperty: 'RemediationSteps', value: 'RemediationSteps' }
        { alertProperty: 'ProductComponentName', value: 'ProductComponentName' }
      ]
    }
    customDetails: {
      DefenderTenantId: 'DefenderTenantId'
      DefenderIncidentId: 'DefenderIncidentId'
      DefenderAlertId: 'SystemAlertId'
    }
    entityMappings: [
      {
        entityType: 'Host'
        fieldMappings: [
          { identifier: 'HostName', columnName: 'EntityHostName' }
          { identifier: 'DnsDomain', columnName: 'EntityHostDnsDomain' }
          { identifier: 'AzureID', columnName: 'EntityHostAzureId' }
        ]
      }
      {
        entityType: 'Account'
        fieldMappings: [
          { identifier: 'Name', columnName: 'EntityAccountName' }
          { identifier: 'UPNSuffix', columnName: 'EntityAccountUPNSuffix' }
          { identifier: 'AadUserId', columnName: 'EntityAccountAadUserId' }
        ]
      }
      {
        entityType: 'Account'
        fieldMappings: [
          { identifier: 'Name', columnName: 'EntityAccount2Name' }
          { identifier: 'UPNSuffix', columnName: 'EntityAccount2UPNSuffix' }
          { identifier: 'AadUserId', columnName: 'EntityAccount2AadUserId' }
        ]
      }
      {
        entityType: 'IP'
        fieldMappings: [
          { identifier: 'Address', columnName: 'EntityIp' }
        ]
      }
      {
        entityType: 'IP'
        fieldMappings: [
          { identifier: 'Address', columnName: 'EntityIp2' }
        ]
      }
      {
        entityType: 'FileHash'
        fieldMappings: [
          { identifier: 'Algorithm', columnName: 'EntityFileHashAlgorithm' }
          { identifier: 'Value', columnName: 'EntityFileHashValue' }
        ]
      }
      {
        entityType: 'URL'
        fieldMappings: [
          { identifier: 'Url', columnName: 'EntityUrl' }
        ]
      }
      {
        entityType: 'Mailbox'
        fieldMappings: [
          { identifier: 'MailboxPrimaryAddress', columnName: 'EntityMailbox' }
        ]
      }
      {
        entityType: 'Process'
        fieldMappings: [
          { identifier: 'ProcessId', columnName: 'EntityProcessId' }
          { identifier: 'CommandLine', columnName: 'EntityProcessCommandLine' }
        ]
      }
      {
        entityType: 'CloudApplication'
        fieldMappings: [
          { identifier: 'AppId', columnName: 'EntityCloudAppId' }
          { identifier: 'Name', columnName: 'EntityCloudAppName' }
        ]
      }
    ]
    incidentConfiguration: {
      createIncident: false
      groupingConfiguration: {
        enabled: false
        reopenClosedIncident: false
        lookbackDuration: 'PT5H'
        matchingMethod: 'AllEntities'
        groupByEntities: []
        groupByAlertDetails: []
        groupByCustomDetails: []
      }
    }
  }
}

var logAnalyticsReaderRoleId = '73c42c96-874c-492b-b04d-ab87d138a893' // Log Analytics Reader

// Log Analytics Reader on the workspace: lets the identity query SecurityAlert.
resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {
  name: guid(workspace.id, principalId, 'log-analytics-reader')
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', logAnalyticsReaderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

output workspaceId string = workspace.properties.customerId
