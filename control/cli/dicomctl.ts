// dicomctl: the single entry point for operators. Each command group lives in commands/<group>.ts.
import { type Command, parse } from './command.js';
import { CliError, setQuiet } from './output.js';

const groups: Record<string, () => Promise<{ commands: Command[] }>> = {
  btl: () => import('./commands/btl.js'),
  lab: () => import('./commands/lab.js'),
  daemon: () => import('./commands/daemon.js'),
  bench: async () => ({
    commands: [
      ...(await import('./commands/bench.js')).commands,
      ...(await import('./commands/bench-api.js')).commands,
      ...(await import('./commands/bench-migration.js')).commands,
      ...(await import('./commands/bench-makespan.js')).commands,
    ],
  }),
  demo: () => import('./commands/demo.js'),
  serve: () => import('./commands/serve.js'),
  token: () => import('./commands/token.js'),
  targets: () => import('./commands/targets.js'),
  builds: () => import('./commands/builds.js'),
  deployments: () => import('./commands/deployments.js'),
  nodes: () => import('./commands/nodes.js'),
  jobs: () => import('./commands/jobs.js'),
  migrate: () => import('./commands/migrate.js'),
  migrations: () => import('./commands/migrate.js'),
  policy: () => import('./commands/policy.js'),
  pool: () => import('./commands/pool.js'),
  kernel: () => import('./commands/kernel.js'),
  matrix: () => import('./commands/matrix.js'),
};

function usage(all: Command[]): string {
  return ['usage: dicomctl <command> [options]', '', ...all.map((c) => `  ${c.usage.padEnd(46)} ${c.summary}`)].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [group, sub, ...rest] = argv;
  if (!group || group === 'help' || group === '--help' || group === '-h') {
    const all = (await Promise.all(Object.values(groups).map((g) => g()))).flatMap((m) => m.commands);
    process.stdout.write(usage(all) + '\n');
    return;
  }
  const load = groups[group];
  if (!load) throw new CliError(`unknown command "${group}"; run "dicomctl help"`, 2);
  const { commands } = await load();
  const cmd = commands.find((c) => c.name === `${group} ${sub ?? ''}`.trim()) ?? commands.find((c) => c.name === group);
  if (!cmd) throw new CliError(`unknown command "${group} ${sub ?? ''}"\n${usage(commands)}`, 2);
  const args = parse(cmd, cmd.name === group ? [sub, ...rest].filter((x): x is string => x !== undefined) : rest);
  if (args.values.help) {
    process.stdout.write(`usage: dicomctl ${cmd.usage}\n${cmd.summary}\n`);
    return;
  }
  setQuiet(false);
  await cmd.run(args);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof CliError) {
    process.stderr.write(`dicomctl: ${e.message}\n`);
    process.exit(e.exitCode);
  }
  process.stderr.write(`dicomctl: internal error: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(70);
});
