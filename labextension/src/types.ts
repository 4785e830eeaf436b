/** The JSON shapes of the REST API (jupyter_amlexec/server/openapi.yaml), as the UI reads them. */
import { MetricPoint } from './logic/state';

export interface Run {
  id: string;
  run_number: number;
  status: string;
  done: boolean;
  detail: string | null;
  target: string;
  script_name: string;
  arguments: string[];
  experiment: string;
  created_utc: string;
  duration: string | null;
  exit_code: number | null;
  error: string | null;
  metrics: Record<string, unknown>;
  [key: string]: unknown;
}

export interface RunPage {
  runs: Run[];
  total: number;
  offset: number;
  limit: number;
}

export interface Target {
  id: string;
  name: string;
  type: string;
  address: string | null;
  port: number | null;
  username: string | null;
  password_env: string | null;
  password_keyring: string | null;
  key_file: string | null;
  base_docker_image: string | null;
  python_location: string | null;
  run_configurations: string[];
}

export interface Targets {
  project: { path: string; name: string };
  targets: Target[];
}

export interface Check {
  id: string;
  reachable: boolean;
  message: string | null;
}

export interface Artifact {
  id: string;
  path: string;
  size: number;
}

export type MetricSeries = Record<string, MetricPoint[]>;
