// The Sentinel playbook: a Logic App with the "Microsoft Sentinel incident" trigger that POSTs the
// trigger's payload (`object`, `workspaceInfo`, `workspaceId`, …: what src/usecase/webhook.rs
// reads) to xdrsync's webhook, with `x-xdrsync-key` and `x-functions-key` read from Key Vault at
// each run by the Logic App's own identity. Inputs and outputs holding the keys are marked secure,
// so run history does not show them. The automation rules that run it are in automation.bicep.

param location string
param prefix string

@description('https://<app>/api/sentinel/incidents')
param webhookUrl string

@description('The Key Vault URI (https://<vault>.vault.azure.net/).')
param vaultUri string

param vaultName string

@description('Object id of the Azure Security Insights service principal; empty: not granted here.')
param sentinelAutomationPrincipalId string

var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
var automationContributorRoleId = 'f4c81013-99ee-4d62-a7ee-b3f1f648599a' // Microsoft Sentinel Automation Contributor
var vaultAudience = 'https://${skip(environment().suffixes.keyvaultDns, 1)}'
var keyVaultApi = '7.4'

// The Microsoft Sentinel connector, authenticated as the Logic App's managed identity.
resource sentinelConnection 'Microsoft.Web/connections@2016-06-01' = {
  name: '${prefix}-xdrsync-sentinel'
  location: location
  properties: {
    displayName: '${prefix}-xdrsync-sentinel'
    parameterValueType: 'Alternative'
    api: {
      id: subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
    }
  }
}

var secureIo = { secureData: { properties: ['inputs', 'outputs'] } }

resource playbook 'Microsoft.Logic/workflows@2019-05-01' = {
  name: '${prefix}-xdrsync-playbook'
  location: location
  identity: { type: 'SystemAssigned' }
  properties: {
    state: 'Enabled'
    parameters: {
      '$connections': {
        value: {
          azuresentinel: {
            connectionId: sentinelConnection.id
            connectionName: sentinelConnection.name
            id: subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
            connectionProperties: { authentication: { type: 'ManagedServiceIdentity' } }
          }
        }
      }
    }
    definition: {
      '$schema': 'https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#'
      contentVersion: '1.0.0.0'
      parameters: {
        '$connections': { defaultValue: {}, type: 'Object' }
      }
      triggers: {
        Microsoft_Sentinel_incident: {
          type: 'ApiConnectionWebhook'
          inputs: {
            body: { callback_url: '@{listCallbackUrl()}' }
            host: { connection: { name: '@parameters(\'$connections\')[\'azuresentinel\'][\'connectionId\']' } }
            path: '/incident-creation'
          }
        }
      }
      actions: {
        Get_webhook_key: {
          type: 'Http'
          runAfter: {}
          runtimeConfiguration: secureIo
          inputs: {
            method: 'GET'
            uri: '${vaultUri}secrets/xdrsync-webhook-key?api-version=${keyVaultApi}'
            authentication: { type: 'ManagedServiceIdentity', audience: vaultAudience }
          }
        }
        Get_function_key: {
          type: 'Http'
          runAfter: {}
          runtimeConfiguration: secureIo
          inputs: {
            method: 'GET'
            uri: '${vaultUri}secrets/xdrsync-function-key?api-version=${keyVaultApi}'
            authentication: { type: 'ManagedServiceIdentity', audience: vaultAudience }
          }
        }
        // 202 = enqueued or an echo; 4xx = nothing to do (README, "Wiring Sentinel to the webhook");
        // 503 (storage down) and network errors are retried by the policy below.
        Post_to_xdrsync: {
          type: 'Http'
          runAfter: { Get_webhook_key: ['Succeeded'], Get_function_key: ['Succeeded'] }
          runtimeConfiguration: { secureData: { properties: ['inputs'] } }
          inputs: {
            method: 'POST'
            uri: webhookUrl
            headers: {
              'Content-Type': 'application/json'
              'x-xdrsync-key': '@{body(\'Get_webhook_key\')?[\'value\']}'
              'x-functions-key': '@{body(\'Get_function_key\')?[\'value\']}'
            }
            body: '@triggerBody()'
            retryPolicy: { type: 'exponential', count: 4, interval: 'PT10S' }
          }
        }
      }
      outputs: {}
    }
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource webhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: 'xdrsync-webhook-key'
}

// Key Vault Secrets User on the webhook key; the Functions key's is in function-key.bicep, which
// creates that secret after publishing.
resource webhookKeyReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(webhookSecret.id, playbook.id, secretsUserRoleId)
  scope: webhookSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: playbook.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Sentinel runs playbooks as its own service principal, which needs this role on the playbook's
// resource group (Learn: "Configure Microsoft Sentinel's permissions to run playbooks").
resource automationContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(sentinelAutomationPrincipalId)) {
  name: guid(resourceGroup().id, sentinelAutomationPrincipalId, automationContributorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', automationContributorRoleId)
    principalId: sentinelAutomationPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output playbookId string = playbook.id
output playbookName string = playbook.name
output principalId string = playbook.identity.principalId
