// Advanced-hunting export, workspace side (deployed in the workspace's resource group): one
// `<Table>_CL` table per exported table, columns from hunting-tables.json (generated from
// xdrsync's schema module; tests/hunting_infra.rs checks it).

param workspaceName string

@description('Advanced-hunting tables to export (names as in hunting-tables.json).')
param tables array

var schema = loadJsonContent('hunting-tables.json')

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = [for name in tables: {
  parent: workspace
  name: '${name}_CL'
  properties: {
    schema: {
      name: '${name}_CL'
      columns: schema.tables[name]
    }
  }
}]
