import { join, queryString, urls } from '../src/logic/urls';

describe('API URLs', () => {
  it('joins the base URL and the API prefix with single slashes', () => {
    expect(urls.run('/user/ana/', 'proj_1')).toBe('/user/ana/jupyter-amlexec/api/runs/proj_1');
    expect(join('http://h/', '/a/', 'b')).toBe('http://h/a/b');
  });

  it('encodes query values and leaves out unset ones', () => {
    expect(urls.runs('/', { path: 'my proj/sub', order_by: 'metric:acc', status: undefined, limit: 50 })).toBe(
      '/jupyter-amlexec/api/runs?path=my%20proj%2Fsub&order_by=metric%3Aacc&limit=50'
    );
    expect(queryString({})).toBe('');
  });

  it('keeps the slashes of an artifact path but encodes each part', () => {
    expect(urls.artifact('/', 'r1', 'sub dir/a#b.txt')).toBe(
      '/jupyter-amlexec/api/runs/r1/artifacts/sub%20dir/a%23b.txt'
    );
  });

  it('passes a follow cursor only when there is one', () => {
    expect(urls.events('/', 'r1')).toBe('/jupyter-amlexec/api/runs/r1/events');
    expect(urls.events('/', 'r1', '12.3')).toBe('/jupyter-amlexec/api/runs/r1/events?cursor=12.3');
    expect(urls.prepare('/', '', 'docker')).toBe('/jupyter-amlexec/api/targets/docker/prepare?path=');
  });
});
