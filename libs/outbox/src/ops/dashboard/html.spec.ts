import { describe, expect, it } from '@jest/globals';
import { html as tag } from './html.js';

// Not called `html` here: Prettier would format the templates as HTML and add whitespace to the expectations.

describe('html', () => {
  it('escapes interpolated text, in elements and attributes, and nested lists', () => {
    const payload = '{"note":"<script>alert(1)</script>","q":"a\'b"}';
    const page = tag`<p title="${payload}">${payload}</p>${[tag`<b>${'&'}</b>`, '<i>']}`;
    expect(page.value).toBe(
      '<p title="{&quot;note&quot;:&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;,&quot;q&quot;:&quot;a&#39;b&quot;}">' +
        '{&quot;note&quot;:&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;,&quot;q&quot;:&quot;a&#39;b&quot;}</p>' +
        '<b>&amp;</b>&lt;i&gt;',
    );
  });

  it('leaves out null, undefined and false, and prints numbers', () => {
    expect(tag`${null}${undefined}${false}${0}${12}`.value).toBe('012');
  });
});
