// Step 2 of a deployment, after `func publish` (operations.md, "Deploy"): the Functions key the
// playbook calls the webhook with (x-functions-key), as a host key of the app and as the Key Vault
// secret the playbook reads, plus Key Vault Secrets User on that secret for the playbook's identity.
// Not in main.bicep: a host key on an app without published code fails (reported for Flex
// Consumption: Azure/azure-functions-host#11379), and a failed deployment returns no outputs.
// Rerunning this template rotates the key (the host key and the secret get the same new value).
// Host keys as ARM resources are documented (Learn: "Automate resource deployment for your
// function app").

@description('Name of the Function App (main.bicep output functionAppName).')
param appName string

@description('Name of the Key Vault (main.bicep output keyVaultName).')
param vaultName string

@description('Name of the playbook (main.bicep output playbookName). Only the playbook uses this key: without it (deployPlaybook=false) skip this step.')
param playbookName string

@description('The key; a new one per deployment unless given.')
@secure()
param functionKey string = newGuid() // checkov:skip=CKV_AZURE_131: newGuid() is a fresh random value per deployment, not a hardcoded secret.

var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: appName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource playbookKey 'Microsoft.Web/sites/host/functionKeys@2024-04-01' = {
  name: '${app.name}/default/xdrsync-playbook'
  properties: {
    name: 'xdrsync-playbook'
    value: functionKey
  }
}

resource functionKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: no expiry, as for the webhook key: the playbook reads it on every call; rerun this template to rotate it.
  parent: vault
  name: 'xdrsync-function-key'
  properties: {
    value: functionKey
    contentType: 'text/plain; x-functions-key'
  }
  dependsOn: [playbookKey]
}

resource playbook 'Microsoft.Logic/workflows@2019-05-01' existing = {
  name: playbookName
}

// Named as playbook.bicep named it before this role moved here, so an upgrade finds it in place.
resource functionKeyReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(functionKeySecret.id, playbook.id, secretsUserRoleId)
  scope: functionKeySecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: playbook.identity.principalId
    principalType: 'ServicePrincipal'
  }
}
